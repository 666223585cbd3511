from wsroute import WsRouter

ws = WsRouter()


@ws.leave("/echo")
async def gone(data: str) -> None: ...
