from wsroute import Channel, HandshakeRequest, Reject, WsRouter

ws = WsRouter()


class User:
    def __init__(self, name: str) -> None:
        self.name = name

    def from_request(self, request: HandshakeRequest) -> "User":  # no @classmethod
        name = request.query_params.get("user")
        if name is None:
            raise Reject(401)
        return User(name)


@ws.message("/echo")
async def echo(data: str, user: User, channel: Channel) -> None: ...
