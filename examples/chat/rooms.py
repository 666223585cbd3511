"""The WebSocket side: rooms at ``/rooms/{room}`` (and the guide's ``/echo``).

* **join** — the `Member` guard has checked the sign-in token (401 otherwise, before
  anything runs); the newcomer gets a `Hello`, and the join returns a `PresenceInfo`: the
  connection is a member of the room's presence (``router.topic(..., presence=True)``) under
  its user id, with its display name as info, until it leaves.
* **message** — a `Say` (``{"text": ...}``) is validated by pydantic, kept in the store
  and broadcast to the room as a `ChatMessage`; a `SetStatus` (``{"type": "status", "away":
  true}``, sent while the page is hidden) changes the connection's presence info in place
  (`Channel.update_presence`).
* **leave** — runs exactly once however the connection ended; wsroute takes the
  connection out of the room's presence by itself, so the handler only cancels the expiry
  timer and logs a removal by an admin (``POST /api/admin/users/{user_id}/kick`` closes with
  `KICKED`).
* **expiry** — a sign-in ends at its token's expiry even on an open socket: the join sets a
  timer that closes the socket then (`Broker.disconnect`, code `EXPIRED`), and the page,
  asking why over HTTP, says "Your sign-in has expired".
* **refs** — a `Say` may carry a ``ref``: the broadcast `ChatMessage` (or the `ErrorEvent`)
  echoes it, so the sender's page can show the message as pending until the server has it,
  and a page that resends a message it never saw confirmed does not post it twice.
* **errors** — a message that fails validation, is too large or is binary gets an
  `ErrorEvent` back and the connection stays open (the default would close it).
* **history** — every room keeps its last `ROOM_HISTORY` broadcasts in the broker
  (``router.topic``): a page whose connection dropped is replayed what it missed when it
  resubscribes, once and in order. The HTTP history comes from the store, written first
  even when live delivery is down.

Presence is wsroute's: the broker keeps the members of every room across workers (Redis
with several), and sends the member list and its changes to the clients that ask for them
(the page's `MultiplexWebSocket` does); `room_members` reads it for HTTP, and adds who was
seen in the room before from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from typing import Annotated, Any

import orjson
from fastapi import Path
from pydantic import TypeAdapter, ValidationError

from examples.chat.auth import Member
from examples.chat.models import (
    MAX_LENGTH,
    ROOM_PATTERN,
    ErrorEvent,
    Hello,
    Ref,
    RoomMember,
    RoomMessage,
    ServerEvent,
    SetStatus,
    User,
)
from examples.chat.state import State
from examples.chat.store import Store, StoreClosed
from wsroute import (
    Broker,
    BrokerUnavailable,
    Channel,
    InvalidMessage,
    MessageTooLarge,
    PresenceInfo,
    RateLimited,
    UnsupportedFrame,
    WebSocketStatus,
    WsRouter,
)

logger = logging.getLogger("examples.chat")

MAX_FRAME = 4096
"""Largest WebSocket message a room accepts, in bytes (a `Say` of `MAX_LENGTH` characters fits)."""

RATE_LIMIT = (60, 10.0)
"""Messages per connection to a room: bursts of 60 (what a page typed offline and sends on
reconnecting fits), 6 a second after that. Over it, a message is dropped with an error."""

router = WsRouter()
"""The handlers; `app.create_app` includes them into the router it installs with its broker."""

_REF: TypeAdapter[str] = TypeAdapter(Ref)

ROOM_HISTORY = 500
"""Broadcasts each room keeps for recovery (messages and announcements)."""

KICKED = 4403
"""Close code of a socket an admin removed (`web.kick`): 4403 is among the browser client's
stop codes, so the page does not reconnect, and says why."""
KICKED_REASON = "removed by an admin"

EXPIRED = 4401
"""Close code of a socket whose sign-in expired: a stop code of the browser client too."""
EXPIRED_REASON = "sign-in expired"

OFFLINE_LIMIT = 50
"""Most offline members a member list shows (the latest seen)."""
OFFLINE_DAYS = 30
"""A user not seen in a room for this many days is no longer listed as one of its members."""

_expiry: dict[Channel[Any], asyncio.TimerHandle] = {}
"""The timer of each open connection that closes it at its expiry (a connection has one
`Channel` from join to leave)."""
_closing: set[asyncio.Task[None]] = set()


Room = Annotated[str, Path(pattern=ROOM_PATTERN, description="Room name: a-z, 0-9, '-' and '_'.")]


@router.join("/rooms/{room}")
async def enter(
    room: Room, member: Member, channel: Channel[ServerEvent], broker: Broker, state: State
) -> PresenceInfo:
    """A signed-in user entered the room: greet them, note them as seen there, then join the
    room's presence as that user (two tabs of one user are two connections of one member)."""
    await channel.send(Hello(room=room, you=member.user, worker=os.getpid(), max_length=MAX_LENGTH))
    _close_at_expiry(broker, channel, member.expires_at)
    await _saw(state.store, room, member.user)
    return PresenceInfo(user=member.user.id, info={"name": member.user.name})


def _listed_since() -> float:
    """The oldest visit a member list shows (and the store keeps), as unix time."""
    return time.time() - OFFLINE_DAYS * 86400


async def _saw(store: Store, room: str, user: User) -> None:
    """Note `user` as seen in `room` now. A store that cannot (closing, locked past its
    timeout) costs the offline list one time, never the user their entry or exit."""
    try:
        await store.saw(room, user, forget_before=_listed_since())
    except StoreClosed:
        pass  # the server is stopping: the time they entered stays
    except sqlite3.Error as exc:
        logger.warning("could not note %s as seen in %s: %s", user.id, room, exc)


def _close_at_expiry(broker: Broker, channel: Channel[ServerEvent], expires_at: float) -> None:
    loop = asyncio.get_running_loop()
    client_id = channel.client_id

    async def close() -> None:
        try:
            # The whole socket: every room on it rode in on the same cookie.
            await broker.disconnect(client_id=client_id, code=EXPIRED, reason=EXPIRED_REASON)
        except BrokerUnavailable:
            await channel.close(EXPIRED, EXPIRED_REASON)  # this room at least: it is ours

    def expire() -> None:
        _expiry.pop(channel, None)
        task = loop.create_task(close())
        _closing.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(_closing.discard)

    _expiry[channel] = loop.call_later(max(0.0, expires_at - time.time()), expire)


@router.message("/rooms/{room}", max_message_size=MAX_FRAME, rate_limit=RATE_LIMIT)
async def say(
    data: RoomMessage, room: Room, member: Member, channel: Channel[ServerEvent], state: State
) -> None:
    """Keep the message and broadcast it to everyone in the room, the sender included (a ref
    sent before only repeats the kept message to its sender). A status changes what this
    connection shows in the room's presence (away while its page is hidden)."""
    if isinstance(data, SetStatus):
        await channel.update_presence({"name": member.user.name, "away": data.away})
        return
    message, new = await state.store.add_message(room, member.user, data.text, data.ref)
    if not new:
        await channel.send(message)
        return
    try:
        await channel.broadcast(message)
    except BrokerUnavailable:
        # Kept, but not delivered live: the sender learns it is saved (its pending line
        # resolves), then `broker_down` says live delivery is down.
        await channel.send(message)
        raise


@router.leave("/rooms/{room}")
async def leave(room: Room, member: Member, status: WebSocketStatus, channel: Channel, state: State) -> None:
    """The connection ended (wsroute has taken it out of the room's presence): stop its expiry
    timer, note a removal, and note the user as last seen in the room now."""
    # `channel` only names the connection's timer: untyped, it documents no message sent here.
    timer = _expiry.pop(channel, None)
    if timer is not None:
        timer.cancel()
    if status.code == KICKED:
        logger.info("%s (%s) was removed from %s by an admin", member.user.name, member.user.id, room)
    await _saw(state.store, room, member.user)


router.topic("/rooms/{room}", history=ROOM_HISTORY, history_ttl=24 * 3600.0, presence=True)


async def room_members(broker: Broker, store: Store, room: str) -> list[RoomMember]:
    """The users of `room`: first who is in it on every worker (`Broker.presence`), each once,
    by name, with how many connections (tabs, devices) they have; then up to `OFFLINE_LIMIT`
    who were seen in it within `OFFLINE_DAYS` and are not connected, latest seen first."""
    online: dict[str, RoomMember] = {}
    for member in await broker.presence(f"/rooms/{room}"):
        if member.user is None:
            continue  # every connection to a room is signed in: not one of ours
        info = member.info if isinstance(member.info, dict) else {}
        away = info.get("away") is True
        known = online.get(member.user)
        if known is None:
            user = User(id=member.user, name=str(info.get("name", "")))
            online[member.user] = RoomMember(user=user, online=True, connections=1, away=away)
        else:
            # Away only while every page of theirs is.
            update = {"connections": known.connections + 1, "away": known.away and away}
            online[member.user] = known.model_copy(update=update)
    members = sorted(online.values(), key=lambda m: (m.user.name.casefold(), m.user.id))
    # Ask for as many more as are online: those are in the table too, and skipped here.
    seen = await store.last_seen(room, OFFLINE_LIMIT + len(online), _listed_since())
    offline = [
        RoomMember(user=user, online=False, connections=0, last_seen=at)
        for user, at in seen
        if user.id not in online
    ]
    return members + offline[:OFFLINE_LIMIT]


@router.message("/echo")
async def echo(data: str, channel: Channel[str]) -> None:
    """The guide's echo: every message goes back to its sender."""
    await channel.send(data)


# --- errors: answer the sender, keep the connection ----------------------------------------


def invalid_message_event(exc: InvalidMessage) -> ErrorEvent:
    """The error to show the sender of a message that failed validation."""
    cause = exc.__cause__
    if isinstance(cause, ValidationError):
        for error in cause.errors(include_url=False):
            # A message is a `Say` or a `SetStatus`: only a Say's text gets its own sentence.
            if error["loc"] != ("Say", "text"):
                continue
            ref = error.get("ctx", {}).get("ref")  # Say puts it there (see its text validator)
            if error["type"] in ("string_too_short", "blank"):
                return ErrorEvent(
                    code="empty", detail="Type something first: empty messages are not sent.", ref=ref
                )
            if error["type"] == "string_too_long":
                given = error.get("input")
                size = f" (yours has {len(given.strip())})" if isinstance(given, str) else ""
                return ErrorEvent(
                    code="too_long", detail=f"Messages are limited to {MAX_LENGTH} characters{size}.", ref=ref
                )
    return ErrorEvent(code="invalid", detail=f'Send JSON like {{"text": "hello"}} ({exc.reason}).')


@router.exception_handler(InvalidMessage)
async def invalid_message(channel: Channel[ServerEvent], exc: InvalidMessage) -> None:
    """The message failed validation (by default: close 1007): say why, keep the connection."""
    await channel.send(invalid_message_event(exc))


@router.exception_handler(MessageTooLarge)
async def message_too_large(channel: Channel[ServerEvent], exc: MessageTooLarge) -> None:
    """The message is over the route's size limit (by default: close 1009)."""
    await channel.send(
        ErrorEvent(code="too_large", detail=f"That message is too large (over {MAX_FRAME} bytes).")
    )


@router.exception_handler(RateLimited)
async def too_fast(channel: Channel[ServerEvent], exc: RateLimited) -> None:
    """Over the room's rate limit (by default: close 1008): the message is dropped unread;
    its ref, if it has a valid one, names it, so the page puts that text back."""
    ref = None
    with contextlib.suppress(ValueError, ValidationError):
        sent = orjson.loads(exc.text or "")
        if isinstance(sent, dict) and "ref" in sent:
            ref = _REF.validate_python(sent["ref"])
    await channel.send(
        ErrorEvent(
            code="rate_limited", detail="You are sending too fast: wait a moment, then send again.", ref=ref
        )
    )


@router.exception_handler(UnsupportedFrame)
async def binary_message(channel: Channel[ServerEvent], exc: UnsupportedFrame) -> None:
    """A binary frame where text is expected (by default: close 1003)."""
    await channel.send(
        ErrorEvent(code="unsupported", detail="Send text: binary messages are not accepted here.")
    )


@router.exception_handler(BrokerUnavailable)
async def broker_down(channel: Channel[ServerEvent], exc: BrokerUnavailable) -> None:
    """The broker (Redis) is down: the message is kept, but could not be delivered live."""
    logger.warning("broker unavailable on %s: %s", channel.topic, exc)
    await channel.send(
        ErrorEvent(
            code="unavailable",
            detail="Live delivery is down (the server lost its broker); what you send is still saved "
            "to the room's history.",
        )
    )
