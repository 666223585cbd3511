from collections.abc import AsyncIterator

from wsroute import Channel, HandshakeRequest, Reject, WsRouter

ws = WsRouter()


class User:
    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    async def from_request(cls, request: HandshakeRequest) -> AsyncIterator["User"]:
        name = request.query_params.get("user")
        if name is None:
            raise Reject(401)
        yield cls(name)


@ws.message("/echo")
async def echo(data: str, user: User, channel: Channel) -> None: ...
