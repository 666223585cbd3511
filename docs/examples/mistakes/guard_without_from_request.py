from wsroute import Channel, Guard, HandshakeRequest, WsRouter

ws = WsRouter()


class User(Guard):
    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def from_requests(cls, request: HandshakeRequest) -> "User":  # misspelt
        return cls("ann")


@ws.message("/echo")
async def echo(data: str, user: User, channel: Channel) -> None: ...
