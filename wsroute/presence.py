"""Presence: who is on a topic, across every process sharing the broker.

A topic whose pattern has ``ws.topic(pattern, presence=True)`` makes every connection on it
(every topic of a multiplexed socket) a `Member`: its `client_id`, made by the server, and
the `user` and `info` its join handler returned as a `PresenceInfo` (both None without one).
A connection is a member from when its join returns until its leave starts (for the other
processes: from its batch on). Changes are batched per topic, stored and published as one
diff (`PresenceDiff`) to the clients that asked for presence events (docs/presence.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import orjson
from pydantic import JsonValue

logger = logging.getLogger("wsroute")

PRESENCE_EVENT = "wsroute.presence"
"""The ``type`` of the event a backend delivers for a presence diff (its ``text`` is the
diff's JSON); it never reaches a socket: only presence subscribers read it."""

DEFAULT_BATCH = 0.05
"""Seconds a process gathers joins and leaves of a topic before publishing them as one diff."""


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceInfo:
    """What a join handler returns to name its connection in presence: the `user` it
    belongs to (one user may have several connections) and `info`, any JSON value shown to
    the others (a display name, an avatar, a status)."""

    user: str | None = None
    info: JsonValue = None

    def __post_init__(self) -> None:
        # Checked here, in the join handler's frame, so a bad value fails that join with a
        # clear error instead of breaking the diff of every member batched with it.
        try:
            orjson.dumps(self.info)
        except TypeError as exc:
            raise TypeError(f"PresenceInfo.info must be JSON-serialisable: {exc}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    """One connection present on a topic."""

    client_id: str
    user: str | None
    info: JsonValue

    def as_json(self) -> dict[str, Any]:
        """``{"user": …, "info": …}``: the member's value in presence frames, keyed by client id."""
        return {"user": self.user, "info": self.info}


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceStats:
    """How many connections (`clients`) and distinct users (`users`) are on a topic; a
    connection without a user counts as a client only."""

    clients: int
    users: int


def encode_state(members: list[Member]) -> str:
    """The JSON of a ``presence=state`` frame: every member by client id."""
    return orjson.dumps({m.client_id: m.as_json() for m in members}).decode()


@dataclasses.dataclass(slots=True)
class PresenceDiff:
    """The joins and leaves of one topic since the last diff (a later join or leave of the
    same client replaces an earlier one: only the last state matters)."""

    joins: dict[str, Member] = dataclasses.field(default_factory=dict)
    leaves: dict[str, Member] = dataclasses.field(default_factory=dict)

    def join(self, member: Member) -> None:
        self.leaves.pop(member.client_id, None)
        self.joins[member.client_id] = member

    def leave(self, member: Member) -> None:
        # Joined and left within one batch: the others never need to hear of it.
        if self.joins.pop(member.client_id, None) is None:
            self.leaves[member.client_id] = member

    def __bool__(self) -> bool:
        return bool(self.joins or self.leaves)

    def encode(self) -> str:
        """``{"joins": {client_id: {user, info}}, "leaves": {…}}``."""
        return orjson.dumps(
            {
                "joins": {cid: m.as_json() for cid, m in self.joins.items()},
                "leaves": {cid: m.as_json() for cid, m in self.leaves.items()},
            }
        ).decode()


class Attendance:
    """A session's part in its topic's presence: itself as a `member` (once its join
    returned), whether it is `watching` the diffs, and the diffs `held` until its client got
    the state (None once live)."""

    __slots__ = ("held", "member", "watching")

    def __init__(self) -> None:
        self.member: Member | None = None
        self.watching = False
        self.held: list[str] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceChange:
    """Who joined and who left `topic` since the previous change (`Broker.presence_changes`)."""

    topic: str
    joins: list[Member]
    leaves: list[Member]

    @classmethod
    def from_json(cls, topic: str, diff: str) -> PresenceChange:
        """The change a diff's JSON describes."""
        body = orjson.loads(diff)
        return cls(
            topic,
            [member_from_json(cid, value) for cid, value in body.get("joins", {}).items()],
            [member_from_json(cid, value) for cid, value in body.get("leaves", {}).items()],
        )


class PresenceFeed:
    """The presence changes of one topic in this process, as an async iterator (see
    `Broker.presence_changes`). Holds at most `limit` changes a slow reader has not taken:
    past that the oldest are dropped, with a warning, rather than growing without bound."""

    def __init__(self, topic: str, limit: int = 1000) -> None:
        self.topic = topic
        self.subscriber_id = f"presence-feed-{id(self)}"
        self._changes: asyncio.Queue[PresenceChange] = asyncio.Queue(limit)
        self._warned = False

    def deliver(self, event: Any) -> None:
        """Broadcasts to the topic are not this feed's business."""

    def deliver_at(self, event: Any, position: Any) -> None:
        """Nor are stored publications."""

    def deliver_presence(self, diff: str) -> None:
        change = PresenceChange.from_json(self.topic, diff)
        if self._changes.full():
            self._changes.get_nowait()
            if not self._warned:
                self._warned = True
                logger.warning("presence changes of %s are read too slowly: oldest dropped", self.topic)
        self._changes.put_nowait(change)

    def __aiter__(self) -> PresenceFeed:
        return self

    async def __anext__(self) -> PresenceChange:
        return await self._changes.get()


def member_from_json(client_id: str, value: dict[str, Any]) -> Member:
    """The `Member` of a stored ``{"user", "info"}`` value."""
    return Member(client_id, value.get("user"), value.get("info"))
