"""Guards: authenticate once per connection, from the handshake request."""

import hashlib
from dataclasses import dataclass

from fastapi import FastAPI

from wsroute import Channel, Guard, HandshakeRequest, Reject, WsRouter

ws = WsRouter()

TOKENS = {"t-ann": "ann", "t-bob": "bob"}  # stand-in for your user store
ROOM_MEMBERS = {"staff": {"ann"}}
DECODES: list[str] = []  # what decode_token did, for the tests


# --8<-- [start:cache]
@dataclass
class Session:
    user: str


def decode_token(token: str) -> Session | None:
    """Pretend this is expensive (a signature check, a database lookup)."""
    DECODES.append(hashlib.sha256(token.encode()).hexdigest()[:8])
    name = TOKENS.get(token)
    return Session(name) if name else None


def session_of(request: HandshakeRequest) -> Session | None:
    # Computed once per connection, whichever guard asks first.
    token = request.query_params.get("token") or request.cookies.get("token") or ""
    return request.local_cache("session", lambda: decode_token(token))


# --8<-- [end:cache]


# --8<-- [start:guard]
class User(Guard):
    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    async def from_request(cls, request: HandshakeRequest) -> "User":
        session = session_of(request)
        if session is None:
            raise Reject(
                401, "log in first"
            )  # the client gets HTTP 401, not a WebSocket
        return cls(session.user)


class Member:  # no base class needed: a classmethod `from_request` makes a guard
    sync_to_thread = False  # a plain def that does no I/O: it runs on the event loop

    def __init__(self, room: str) -> None:
        self.room = room

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> "Member":
        room = request.path_params["room"]
        session = session_of(request)
        members = ROOM_MEMBERS.get(room)
        if members is not None and (session is None or session.user not in members):
            raise Reject(403, f"not a member of {room}")
        return cls(room)


@ws.message("/rooms/{room}")
async def said(data: str, user: User, member: Member, channel: Channel) -> None:
    # User and Member were built at the handshake and are reused for every message.
    await channel.broadcast(f"{user.name}@{member.room}: {data}")


# --8<-- [end:guard]


# --8<-- [start:optional]
@ws.message("/news")
async def news(data: str, user: User | None, channel: Channel) -> None:
    # Open to everyone: a refused User is None here, and the guest is let in.
    await channel.send(f"{user.name if user else 'a guest'} asked for {data}")


# --8<-- [end:optional]


app = FastAPI()
ws.install(app)
