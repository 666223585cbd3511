from wsroute import Channel, WsRouter

ws = WsRouter()


@ws.join("/rooms/{room}")
async def joined(data: str, channel: Channel) -> None: ...
