from wsroute import WsRouter

ws = WsRouter()


@ws.message("/echo")
def echo(data: str) -> None: ...
