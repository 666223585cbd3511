from wsroute import Channel, HandshakeRequest, WsRouter

ws = WsRouter()


class User:
    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def from_request(cls, request: HandshakeRequest, users: dict[str, str]) -> "User":
        return cls(users[request.query_params["token"]])


@ws.message("/echo")
async def echo(data: str, user: User, channel: Channel) -> None: ...
