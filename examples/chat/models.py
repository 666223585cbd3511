"""The messages of the chat, as pydantic models: what clients send, what the server sends.

Every server event is a JSON object whose ``type`` says which one it is; `ServerEvent` is
their union, and ``Channel[ServerEvent]`` in a handler documents (and type-checks) that
nothing else is sent on ``/rooms/{room}``.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import PydanticCustomError

MAX_LENGTH = 500
"""Longest chat message, in characters (after surrounding whitespace is stripped)."""
MAX_NAME = 32
"""Longest display name, in characters."""
ROOM_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
"""Room names: lowercase letters, digits, ``-`` and ``_``; 1 to 32 characters."""
HISTORY = 50
"""How many past messages a client gets when it enters a room."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
"""Bidi embeddings, overrides and isolates: they reorder the text around them (U+202E shows
"NIMDA" as "ADMIN"). The marks U+200E/U+200F only set a direction, and stay."""
_JOINERS = {"\u200c", "\u200d", *map(chr, range(0xE0020, 0xE0080))}
"""Format characters that names need: (non-)joiners, in emoji sequences and in Persian or
Indic script, and the tags of subdivision flags (England's, Scotland's, Wales')."""
_BLANKS = {"\u115f", "\u1160", "\u2800", "\u3164", "\uffa0"}
"""Letters that render as nothing (Hangul fillers, the blank Braille pattern)."""


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _well_formed(value: object) -> object:
    """A lone surrogate (half an emoji from a cut paste, which JSON can escape) becomes U+FFFD,
    as a browser's TextEncoder makes it: no UTF-8, so no response or token, can carry it."""
    return _LONE_SURROGATE.sub("\ufffd", value) if isinstance(value, str) else value


def _name(value: str) -> str:
    """NFKC (so look-alike compatibility forms compare equal), spaces collapsed, and nothing
    that hides or reorders text; at least one visible character."""
    value = unicodedata.normalize("NFKC", value)
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    value = " ".join(value.split())
    if len(value) > MAX_NAME:  # NFKC may lengthen: "\ufdfa" is 18 characters
        raise ValueError(f"must be at most {MAX_NAME} characters once normalised")
    if any(unicodedata.category(c) == "Cf" and c not in _JOINERS for c in value):
        raise ValueError("must not contain invisible formatting characters (such as direction overrides)")
    if all(c.isspace() or c in _BLANKS or unicodedata.category(c) in ("Cf", "Mn", "Me") for c in value):
        raise ValueError("must contain a visible character")
    return value


_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Control characters but tab and newline: nothing a person types, some a terminal obeys."""


def _clean_text(value: object) -> object:
    """Control characters (but tab and newline) and bidi overrides go (the rest of the message
    stays as typed)."""
    return _BIDI.sub("", _CONTROL_IN_TEXT.sub("", value)) if isinstance(value, str) else value


def _visible_text(value: str) -> str:
    """At least one visible character, as a name needs: a message of zero-width spaces or
    Hangul fillers is an empty line to everyone else."""
    if all(c.isspace() or c in _BLANKS or unicodedata.category(c) in ("Cf", "Mn", "Me") for c in value):
        raise PydanticCustomError("blank", "must contain a visible character")
    return value


DisplayName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME),
    BeforeValidator(_well_formed),
    AfterValidator(_name),
]
MessageText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_LENGTH),
    BeforeValidator(_clean_text),  # runs first: the constraints see the cleaned text
    AfterValidator(_visible_text),
]
Ref = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class User(BaseModel):
    """Someone signed in: a random id (names need not be unique) and a display name."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Random id chosen at sign-in.")
    name: str = Field(description="Display name.")


# --- client -> server ----------------------------------------------------------------------


class Say(BaseModel):
    """A chat message from a client to its room: ``{"text": "hello"}``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": "hello"}]})

    # Before `text`: its errors carry the ref (fields validate in this order).
    ref: Ref | None = Field(
        None,
        description="The sender's name for this message, echoed in its `ChatMessage` (or `ErrorEvent`) "
        "so the page can match its pending copy; sending a ref again does not repeat the message.",
    )
    text: MessageText = Field(description=f"1 to {MAX_LENGTH} characters.")

    @field_validator("text", mode="wrap")
    @classmethod
    def _text_errors_name_the_ref(
        cls, value: object, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> str:
        try:
            text: str = handler(value)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            ctx = {**first.get("ctx", {}), "ref": info.data.get("ref")}
            raise PydanticCustomError(first["type"], first["msg"], ctx) from None
        return text


class SetStatus(BaseModel):
    """A page telling its room whether its user is away (its tab hidden):
    ``{"type": "status", "away": true}``. Shown to the room through presence."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"type": "status", "away": True}]}
    )

    type: Literal["status"]
    away: bool = Field(description="True while the page is hidden (another tab, a minimised window).")


RoomMessage = Say | SetStatus
"""What a page sends to its room: a chat message, or its away status."""


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
    ref: str | None = Field(default=None, description="The sender's `Say.ref`, if it gave one.")


class Announcement(BaseModel):
    """A message from the admin endpoint, broadcast to the room (and kept in its history)."""

    type: Literal["announcement"] = "announcement"
    id: int
    room: str
    text: str
    at: datetime


ErrorCode = Literal["empty", "too_long", "invalid", "too_large", "unsupported", "unavailable", "rate_limited"]


class ErrorEvent(BaseModel):
    """Sent to one client whose message was refused; its connection stays open."""

    type: Literal["error"] = "error"
    code: ErrorCode
    detail: str = Field(description="A sentence to show to the user.")
    ref: str | None = Field(
        default=None, description="The `Say.ref` of the refused message, when it could be read."
    )


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
    """A user of a room: online (in the broker's presence, on any worker) or seen there before."""

    user: User
    online: bool = Field(description="Connected to the room now, on any worker.")
    connections: int = Field(description="Connections (tabs, devices) the user has to the room; 0 offline.")
    away: bool = Field(default=False, description="Online, but every page of theirs in the room is hidden.")
    last_seen: datetime | None = Field(
        default=None, description="Offline members: when they last entered or left the room (null online)."
    )


class Members(BaseModel):
    """Who is in a room: the online members by name, then the offline ones, latest seen first."""

    room: str
    members: list[RoomMember]


class Kicked(BaseModel):
    """``POST /api/admin/users/{user_id}/kick`` response."""

    closed: int = Field(description="How many sockets of the user were closed, on every worker.")
