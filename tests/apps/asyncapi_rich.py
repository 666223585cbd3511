"""An app with every kind of route the AsyncAPI document describes, for ``test_asyncapi.py``.

Models in and out (with nested models, so ``$defs`` must be hoisted), path/query/header/cookie
parameters, guards that describe their security, FastAPI security dependencies (API key
header, HTTP bearer, OAuth2 password bearer, API key cookie inside a dependency), anonymous
``{_}`` segments, join and leave handlers, ``str``/``bytes``/``Data``/``str | bytes``
messages, ``sends=`` and typed ``Channel[T]``. The handlers are not meant to be called.
"""

from __future__ import annotations

import datetime
import enum
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Header, Path, Query
from fastapi.security import (
    APIKeyCookie,
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBearer,
    OAuth2PasswordBearer,
)
from pydantic import BaseModel, Field

from wsroute import Channel, Data, Guard, HandshakeRequest, Reject, WebSocketStatus, WsRouter
from wsroute.asyncapi import SecurityScheme


class Kind(enum.Enum):
    """What a chat line is."""

    SAID = "said"
    EMOTE = "emote"


class Attachment(BaseModel):
    """A file attached to a message."""

    name: str
    size: int = Field(ge=0)


class ChatIn(BaseModel):
    """What a client says in a room."""

    text: str = Field(min_length=1, max_length=500)
    kind: Kind = Kind.SAID
    attachments: list[Attachment] = []


class ChatOut(BaseModel):
    """A line of the room, as everyone receives it."""

    user: str
    text: str
    kind: Kind
    at: datetime.datetime
    attachments: list[Attachment] = []


class Joined(BaseModel):
    """Someone arrived."""

    event: Literal["joined"] = "joined"
    user: str


class Left(BaseModel):
    """Someone left."""

    event: Literal["left"] = "left"
    user: str
    code: int


class Command(BaseModel):
    """An admin command."""

    action: Literal["kick", "mute"]
    target: str


class Ping:
    """A keep-alive the server sends as the text ``ping``."""

    def into_message(self) -> str:
        return "ping"


class User(Guard):
    """A user identified by the ``token`` query parameter."""

    security = SecurityScheme.api_key("token", "query", description="A session token.")

    def __init__(self, name: str) -> None:
        self.name = name

    sync_to_thread = False

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> User:
        token = request.query_params.get("token")
        if not token:
            raise Reject(401, "missing token")
        return cls(token)


class Admin:
    """An admin, from a bearer token; a guard without the Guard base class."""

    security = SecurityScheme.http_bearer(bearer_format="JWT", name="AdminToken")

    sync_to_thread = False

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> Admin:
        if request.headers.get("authorization") != "Bearer admin":
            raise Reject(403)
        return cls()


class Anyone(Guard):
    """A guard that describes no security."""

    sync_to_thread = False

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> Anyone:
        return cls()


api_key = APIKeyHeader(name="X-API-Key")
bearer = HTTPBearer(bearerFormat="opaque")
oauth2 = OAuth2PasswordBearer(tokenUrl="/token", scopes={"files:read": "Read files"})
session = APIKeyCookie(name="session")


async def tenant(
    session_id: Annotated[str, Depends(session)],
    tenant: Annotated[str, Query(pattern=r"^[a-z]+$", description="The tenant.")] = "main",
) -> str:
    """A dependency with its own query parameter and a nested security dependency."""
    return f"{tenant}:{session_id}"


ws = WsRouter(title="Rich wsroute app", version="2.5.0", description="Every route kind, documented.")


@ws.message("/echo", sends=[str])
async def echo(data: str, channel: Channel) -> None:
    """Echo every text message.

    The reply is the message, unchanged.
    """
    await channel.send(data)


@ws.join("/rooms/{room}", sends=[Joined])
async def joined(
    room: Annotated[str, Path(description="The room's name.", max_length=40)],
    user: User,
    channel: Channel[ChatOut],
    x_client: Annotated[str | None, Header()] = None,
) -> None:
    """Announce the newcomer to the room."""
    await channel.broadcast(Joined(user=user.name))


@ws.message("/rooms/{room}")
async def said(
    room: str,
    data: ChatIn,
    user: User,
    channel: Channel[ChatOut],
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> None:
    """Broadcast what a client says to the room."""
    await channel.broadcast(
        ChatOut(user=user.name, text=data.text, kind=data.kind, at=datetime.datetime.now(datetime.UTC))
    )


@ws.leave("/rooms/{room}")
async def left(room: str, status: WebSocketStatus, user: User, channel: Channel[Left]) -> None:
    """Tell the room who left."""
    await channel.broadcast(Left(user=user.name, code=status.code))


@ws.message("/files/{_}/{_}", sends=[bytes])
async def upload(
    data: bytes,
    credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)],
    token: Annotated[str, Depends(oauth2)],
    channel: Channel,
) -> None:
    """Store a binary chunk and send back its checksum as bytes."""
    await channel.send(data[:4])


@ws.message("/raw/{kind}", sends=[Data, Ping])
async def raw(kind: Kind, message: Data, key: Annotated[str, Depends(api_key)], channel: Channel) -> None:
    """Send back whatever arrives, text or binary."""
    await channel.send(message)


@ws.message("/either")
async def either(
    data: str | bytes,
    channel: Channel[ChatOut | Joined],
    tags: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI style default
    ten: Annotated[str, Depends(tenant)] = "",
) -> None:
    """Take text or binary frames."""


@ws.message("/admin/{user_id:int}", sends=[dict[str, int]])
async def admin(user_id: int, data: Command, who: Admin, anyone: Anyone, channel: Channel) -> None:
    """Run an admin command."""
    await channel.send({"done": 1})


@ws.leave("/{_}")
async def anywhere(status: WebSocketStatus) -> None:
    """Log every disconnect that no other leave handler took."""


app = FastAPI(title="Rich app (FastAPI title)", version="9.9.9")
ws.install(app)


@app.get("/health")
async def health() -> dict[str, str]:
    """An ordinary HTTP route."""
    return {"status": "ok"}
