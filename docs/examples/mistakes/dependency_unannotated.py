from typing import Annotated

from fastapi import Depends

from wsroute import WsRouter

ws = WsRouter()


def current_user(token):  # type: ignore[no-untyped-def]
    return token


@ws.message("/echo")
async def echo(data: str, user: Annotated[str, Depends(current_user)]) -> None: ...
