"""The messages of the chat, as pydantic models: what clients send, what the server sends.

Every server event is a JSON object whose ``type`` says which one it is; `ServerEvent` is
their union, and ``Channel[ServerEvent]`` in a handler documents (and type-checks) that
nothing else is sent on ``/rooms/{room}``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_LENGTH = 500
"""Longest chat message, in characters (after surrounding whitespace is stripped)."""
MAX_NAME = 32
"""Longest display name, in characters."""
ROOM_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
"""Room names: lowercase letters, digits, ``-`` and ``_``; 1 to 32 characters."""
HISTORY = 50
"""How many past messages a client gets when it enters a room."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


DisplayName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME),
    AfterValidator(_printable),
]
MessageText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_LENGTH)]


class User(BaseModel):
    """Someone signed in: a random id (names need not be unique) and a display name."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Random id chosen at sign-in.")
    name: str = Field(description="Display name.")


# --- client -> server ----------------------------------------------------------------------


class Say(BaseModel):
    """A chat message from a client to its room: ``{"text": "hello"}``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": "hello"}]})

    text: MessageText = Field(description=f"1 to {MAX_LENGTH} characters.")


# --- server -> client ----------------------------------------------------------------------


class Hello(BaseModel):
    """Sent to a client only, first thing after it enters a room."""

    type: Literal["hello"] = "hello"
    room: str
    you: User
    worker: int = Field(description="Process id of the server worker this client is connected to.")
    max_length: int = Field(MAX_LENGTH, description="Longest message the room accepts, in characters.")


class ChatMessage(BaseModel):
    """Something a member said, broadcast to the room (and kept in its history)."""

    type: Literal["message"] = "message"
    id: int = Field(description="Increasing id; history and live messages share it.")
    room: str
    user: User
    text: str
    at: datetime


class Announcement(BaseModel):
    """A message from the admin endpoint, broadcast to the room (and kept in its history)."""

    type: Literal["announcement"] = "announcement"
    id: int
    room: str
    text: str
    at: datetime


ErrorCode = Literal["empty", "too_long", "invalid", "too_large", "unsupported", "unavailable"]


class ErrorEvent(BaseModel):
    """Sent to one client whose message was refused; its connection stays open."""

    type: Literal["error"] = "error"
    code: ErrorCode
    detail: str = Field(description="A sentence to show to the user.")


ServerEvent = Hello | ChatMessage | Announcement | ErrorEvent
"""Every event the server sends on ``/rooms/{room}`` (each is one message in the AsyncAPI page)."""

HistoryItem = Annotated[ChatMessage | Announcement, Field(discriminator="type")]


# --- HTTP ----------------------------------------------------------------------------------


class SignIn(BaseModel):
    """``POST /api/session`` body."""

    name: DisplayName


class Session(BaseModel):
    """A signed-in session: the user and when the token expires."""

    user: User
    expires_at: datetime
    token: str | None = Field(
        default=None,
        description="The signed token (only in the sign-in response; the browser uses the "
        "HttpOnly cookie set with it, other clients send it as `Authorization: Bearer`).",
    )


class History(BaseModel):
    """The last messages of a room, oldest first."""

    room: str
    messages: list[HistoryItem]


class Announce(BaseModel):
    """``POST /api/admin/rooms/{room}/announce`` body."""

    text: MessageText


class RoomMember(BaseModel):
    """A user in a room (from the broker's presence, on every worker)."""

    user: User
    connections: int = Field(description="How many connections (tabs, devices) the user has to the room.")


class Members(BaseModel):
    """Who is in a room right now, by name."""

    room: str
    members: list[RoomMember]


class Kicked(BaseModel):
    """``POST /api/admin/users/{user_id}/kick`` response."""

    closed: int = Field(description="How many sockets of the user were closed, on every worker.")
