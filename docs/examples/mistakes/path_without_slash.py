from wsroute import WsRouter

ws = WsRouter()


@ws.message("echo")
async def echo(data: str) -> None: ...
