from wsroute import Data, WsRouter

ws = WsRouter()


@ws.join("/rooms/{room}")
async def joined(hello: Data) -> None: ...
