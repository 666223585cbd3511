from wsroute import Channel, Data, WsRouter

ws = WsRouter()


@ws.message("/echo")
async def echo(data: str, raw: Data, channel: Channel) -> None: ...
