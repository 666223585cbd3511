from typing import Annotated

from fastapi import Body

from wsroute import WsRouter

ws = WsRouter()


@ws.message("/echo")
async def echo(data: str, extra: Annotated[str, Body()]) -> None: ...
