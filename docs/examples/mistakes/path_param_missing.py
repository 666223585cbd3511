from typing import Annotated

from fastapi import Path

from wsroute import WsRouter

ws = WsRouter()


@ws.message("/rooms")
async def said(data: str, room: Annotated[str, Path()]) -> None: ...
