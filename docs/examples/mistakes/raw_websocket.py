from fastapi import WebSocket

from wsroute import WsRouter

ws = WsRouter()


@ws.message("/echo")
async def echo(data: str, websocket: WebSocket) -> None: ...
