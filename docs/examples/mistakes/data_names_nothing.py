from wsroute import WsRouter

ws = WsRouter()


@ws.message("/echo", data="payload")
async def echo(text: str) -> None: ...
