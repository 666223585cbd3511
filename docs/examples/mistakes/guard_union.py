from wsroute import Channel, Guard, HandshakeRequest, WsRouter

ws = WsRouter()


class Staff(Guard):
    @classmethod
    async def from_request(cls, request: HandshakeRequest) -> "Staff":
        return cls()


class Visitor(Guard):
    @classmethod
    async def from_request(cls, request: HandshakeRequest) -> "Visitor":
        return cls()


@ws.message("/desk")
async def desk(data: str, who: Staff | Visitor, channel: Channel) -> None: ...
