"""Routes that document themselves: served at /asyncapi (page) and /asyncapi.json."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, FastAPI
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from wsroute import Channel, Guard, HandshakeRequest, Reject, WsRouter
from wsroute.asyncapi import SecurityScheme

ws = WsRouter(title="Chat API", version="1.2.0", description="Rooms and presence.")


# --8<-- [start:models]
class Say(BaseModel):
    """What a client says in a room."""

    text: str = Field(min_length=1, max_length=500)


class Said(BaseModel):
    """A message, as the room receives it."""

    user: str
    text: str
    at: datetime


class Presence(BaseModel):
    """Someone arrived or left."""

    event: Literal["join", "leave"]
    user: str
# --8<-- [end:models]


# --8<-- [start:guard]
class User(Guard):
    sync_to_thread = False  # reads the request only: runs on the event loop
    security = SecurityScheme.api_key("token", "query", description="Session token")

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> "User":
        token = request.query_params.get("token")
        if not token:
            raise Reject(401, "log in first")
        return cls(token.removeprefix("t-"))
# --8<-- [end:guard]


# --8<-- [start:handlers]
@ws.join("/rooms/{room}", sends=[Presence])
async def joined(room: str, user: User, channel: Channel) -> None:
    """Announce the newcomer to the room."""
    await channel.broadcast(Presence(event="join", user=user.name))


@ws.message("/rooms/{room}")
async def say(data: Say, user: User, channel: Channel[Said]) -> None:
    """Say something in a room.

    Everyone in the room receives it, the sender included.
    """
    await channel.broadcast(Said(user=user.name, text=data.text, at=datetime.now()))


bearer = HTTPBearer(bearerFormat="JWT")


@ws.message("/admin/broadcast")
async def admin(
    data: str,
    credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)],
    channel: Channel[str],
) -> None:
    """Operators only."""
    await channel.send(f"ok: {data}")
# --8<-- [end:handlers]


app = FastAPI(title="Chat")
ws.install(app)  # /asyncapi.json and the /asyncapi page, next to FastAPI's /docs
