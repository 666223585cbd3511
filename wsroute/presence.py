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
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import JsonValue

from wsroute.errors import BrokerUnavailable

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
        # clear error instead of breaking the diff of every member batched with it. Kept as
        # JSON, as `update_presence` keeps it: the values clients get, alike on every
        # backend, and not changed by the app's later changes to its own dict.
        encoded = info_json(self.info)
        if self.info is not None and type(self.info) is not str:
            object.__setattr__(self, "info", orjson.loads(encoded))


def info_json(info: JsonValue) -> bytes:
    """`info` as JSON with sorted keys (equal infos encode alike); `TypeError` saying so
    when JSON cannot encode it (`PresenceInfo`, `Channel.update_presence`)."""
    try:
        return orjson.dumps(info, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise TypeError(f"PresenceInfo.info must be JSON-serialisable: {exc}") from None


@dataclasses.dataclass(frozen=True)
class Member:
    """One connection present on a topic."""

    # Slots by hand rather than `slots=True`: `_state_entry` is a cache, not a field, so it
    # stays out of `dataclasses.asdict`, comparisons and the responses FastAPI makes of it.
    __slots__ = ("_state_entry", "client_id", "info", "user")

    client_id: str
    user: str | None
    info: JsonValue

    def as_json(self) -> dict[str, Any]:
        """``{"user": …, "info": …}``: the member's value in presence frames, keyed by client id."""
        return {"user": self.user, "info": self.info}

    def _entry(self) -> bytes:
        # This member's ``"client id":{"user":…,"info":…}`` in a state frame, kept from the
        # first one that lists it: a join storm sends a topic's whole list to every joiner,
        # and a dict per member each time costs ~0.4 µs apiece, most of it the collector's.
        entry: bytes | None = getattr(self, "_state_entry", None)
        if entry is None:
            entry = orjson.dumps(self.client_id) + b":" + orjson.dumps(self.as_json())
            object.__setattr__(self, "_state_entry", entry)  # frozen: a cache, not a field
        return entry


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceStats:
    """How many connections (`clients`) and distinct users (`users`) are on a topic; a
    connection without a user counts as a client only."""

    clients: int
    users: int


def encode_state(members: list[Member]) -> str:
    """The JSON of a ``presence=state`` frame: every member by client id (the backends list
    each client id once)."""
    return (b"{" + b",".join([m._entry() for m in members]) + b"}").decode()


@dataclasses.dataclass(slots=True)
class PresenceDiff:
    """The joins and leaves of one topic since the last diff (a later join or leave of the
    same client replaces an earlier one: only the last state matters)."""

    joins: dict[str, Member] = dataclasses.field(default_factory=dict)
    leaves: dict[str, Member] = dataclasses.field(default_factory=dict)
    # Clients whose join here replaces a member stored before: leaving again must remove it.
    stored: set[str] = dataclasses.field(default_factory=set)

    def join(self, member: Member, *, replacing: bool = False) -> None:
        """`member` joined; `replacing` when its client id was already a member."""
        if self.leaves.pop(member.client_id, None) is not None or replacing:
            self.stored.add(member.client_id)
        self.joins[member.client_id] = member

    def leave(self, member: Member) -> None:
        """`member` left."""
        cid = member.client_id
        if self.joins.pop(cid, None) is None or cid in self.stored:
            self.stored.discard(cid)
            self.leaves[cid] = member
        # else: joined and left within one batch, never stored: nobody needs to hear of it.

    def merge_older(self, older: PresenceDiff) -> None:
        """Take back the changes of `older` (a batch that failed) under this newer one: a
        client this one has a change of keeps it."""
        for source, target in ((older.joins, self.joins), (older.leaves, self.leaves)):
            for cid, member in source.items():
                if cid not in self.joins and cid not in self.leaves:
                    target[cid] = member
        self.stored |= older.stored

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


class PresenceWriter:
    """This process's members and their changes, gathered per topic and handed to `update`
    (the backend's `presence_update`: store and announce) in batches, every `batch` seconds.

    Batches go one at a time, in order (a leave never overtakes its join), each in a task of
    its own, so a reader that is cancelled while it waits cannot lose one. A batch the
    backend could not take is merged back under the newer changes; while the backend fails,
    one topic is tried per attempt and the attempts back off (from `batch` to
    `RETRY_MAX` seconds), so an outage costs one timeout per attempt, not one per topic,
    and is logged when it starts and when it ends.
    """

    RETRY_MAX = 5.0

    def __init__(self, update: Callable[[str, PresenceDiff], Awaitable[None]], batch: float) -> None:
        self.update = update
        self.batch = batch
        self.members: dict[str, dict[str, Member]] = {}
        self.diffs: dict[str, PresenceDiff] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # The newest flush, with the count of batches taken when it was made: until another
        # is taken (by it: flushes take them in turn), a flush asked for meanwhile is that one
        # (readers settle before each read, and a join storm would otherwise write one batch
        # per reader instead of one per interval).
        self._queued: tuple[asyncio.Task[None], int] | None = None
        self._taken = 0
        self._lock: asyncio.Lock | None = None  # made in the loop that uses it
        # Since when the backend refuses batches (None: it takes them), and the next wait.
        self._failing_since: float | None = None
        self._retry = batch

    def join(self, topic: str, member: Member) -> None:
        """`member` is present on `topic` from now on (written with the next batch)."""
        members = self.members.setdefault(topic, {})
        diff = self._diff(topic)
        # Replacing a stored member (an update), not one still waiting in this batch: that
        # one, leaving before the batch goes, was never stored nor announced.
        replacing = member.client_id in members and member.client_id not in diff.joins
        members[member.client_id] = member
        diff.join(member, replacing=replacing)

    def leave(self, topic: str, client_id: str) -> None:
        """A member of this process leaves `topic` (written with the next batch)."""
        members = self.members.get(topic)
        member = None if members is None else members.pop(client_id, None)
        if member is None:
            return
        if not members:
            del self.members[topic]
        self._diff(topic).leave(member)

    def _diff(self, topic: str) -> PresenceDiff:
        diff = self.diffs.get(topic)
        if diff is None:
            diff = self.diffs[topic] = PresenceDiff()
        self._arm()
        return diff

    def _arm(self, delay: float | None = None) -> None:
        if self._timer is None:
            # Churn goes out batched: one diff per topic per interval, however many changes;
            # while the backend refuses them, at the retry's pace, however many come.
            if delay is None:
                delay = self.batch if self._failing_since is None else self._retry
            self._timer = asyncio.get_running_loop().call_later(delay, self.flush)

    def flush(self) -> asyncio.Task[None]:
        """Start writing what is gathered; the task ends once it (and every batch before
        it) was written or given back. A flush that has not yet taken the changes is
        shared: it will take these too."""
        queued = self._queued
        if queued is not None and queued[1] == self._taken and not queued[0].done():
            return queued[0]
        taken = self._taken
        task = asyncio.get_running_loop().create_task(self._send())
        self._queued = (task, taken)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def settle(self) -> None:
        """Wait until the changes gathered so far were written: a read after it sees this
        process's own joins and leaves. Cancelling the caller does not cancel the write."""
        if self.diffs or self._tasks:
            await asyncio.shield(self.flush())

    async def close(self) -> None:
        """Write what is left (a few tries: changes may still arrive meanwhile; one, when the
        backend refuses it), then forget it all and stop the timer."""
        for _ in range(3):
            if not self.diffs and not self._tasks:
                break
            await asyncio.shield(self.flush())
            if self._failing_since is not None:
                break
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.diffs:
            logger.warning("presence changes of %d topics were dropped at shutdown", len(self.diffs))
        self.diffs.clear()
        self.members.clear()
        self._queued = None
        self._lock = None
        self._failing_since, self._retry = None, self.batch

    async def _send(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            diffs, self.diffs = self.diffs, {}
            self._taken += 1
            pending = [(topic, diff) for topic, diff in diffs.items() if diff]
            for index, (topic, diff) in enumerate(pending):
                try:
                    await self.update(topic, diff)
                except BrokerUnavailable as exc:
                    # The backend is down: keep this batch and the rest without trying each
                    # (one timeout apiece would hold a read or a shutdown that long). The
                    # failed topic goes last, so that one the backend refuses for itself
                    # does not hold back the others for good.
                    for later_topic, later in [*pending[index + 1 :], (topic, diff)]:
                        self._give_back(later_topic, later)
                    self._failed(exc)
                    return
                except Exception:
                    logger.exception("presence changes of %s were dropped", topic)
            if self._failing_since is not None:
                logger.warning(
                    "presence changes stored again after %.1f s", time.monotonic() - self._failing_since
                )
                self._failing_since, self._retry = None, self.batch

    def _give_back(self, topic: str, diff: PresenceDiff) -> None:
        # The backend may have stored the joins before it failed (a timeout on the reply):
        # a leave of one of them must be written, not dropped as never stored.
        diff.stored.update(diff.joins)
        newer = self.diffs.get(topic)
        if newer is None:
            self.diffs[topic] = diff
        else:
            newer.merge_older(diff)

    def _failed(self, exc: BrokerUnavailable) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            logger.warning("presence changes not stored, retried until they are: %s", exc)
        else:
            self._retry = min(self._retry * 2, self.RETRY_MAX)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._arm(self._retry)


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
