from wsroute import Channel, WsRouter

ws = WsRouter()


@ws.message("/echo")
async def echo(data, channel: Channel) -> None: ...
