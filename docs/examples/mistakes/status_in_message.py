from wsroute import WebSocketStatus, WsRouter

ws = WsRouter()


@ws.message("/echo")
async def echo(data: str, status: WebSocketStatus) -> None: ...
