from typing import Annotated

from fastapi import Depends

from wsroute import WebSocketStatus, WsRouter

ws = WsRouter()


def describe(status: WebSocketStatus) -> str:
    return f"{status.code} {status.reason}"


@ws.leave("/echo")
async def gone(text: Annotated[str, Depends(describe)]) -> None: ...
