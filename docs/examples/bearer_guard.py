"""A guard that takes `Authorization: Bearer <token>` and refuses anything else with 401."""

from fastapi import FastAPI

from wsroute import Channel, Guard, HandshakeRequest, Reject, SecurityScheme, WsRouter

ws = WsRouter()

API_TOKENS = {"tok-ann": "ann", "tok-bob": "bob"}  # stand-in for your token store


class Caller(Guard):
    security = SecurityScheme.http_bearer()  # listed in the AsyncAPI document

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    async def from_request(cls, request: HandshakeRequest) -> "Caller":
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        name = API_TOKENS.get(token.strip()) if scheme.lower() == "bearer" else None
        if name is None:
            # RFC 6750: the 401 names the scheme the client must authenticate with.
            raise Reject(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        return cls(name)


@ws.message("/api/feed")  # for scripts and servers: a browser cannot set this header
async def feed(data: str, caller: Caller, channel: Channel) -> None:
    await channel.send(f"{caller.name}: {data}")


app = FastAPI()
ws.install(app)
