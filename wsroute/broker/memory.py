"""The in-memory backend: one process, no setup; the default (``"memory://"``).

History is a bounded ring per topic. Each topic's stream gets a random epoch when it is
first used, so a restarted process (a new backend) never passes for the old one.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque

from starlette.types import Message

from wsroute.broker.base import BrokerBackend, Deliver
from wsroute.history import POSITION_TTL, HistoryPolicy, Publication, StreamPosition, StreamRead
from wsroute.presence import PRESENCE_EVENT, Member, PresenceStats


class _Stream:
    """One topic's stream: epoch, last offset, and the kept publications as
    ``(offset, monotonic time, wire data)``, oldest first."""

    __slots__ = ("entries", "epoch", "offset", "touched")

    def __init__(self, size: int, now: float) -> None:
        self.epoch = secrets.token_urlsafe(6)
        self.offset = 0
        self.touched = now
        self.entries: deque[tuple[int, float, str | bytes]] = deque(maxlen=size)

    def expire(self, ttl: float | None, now: float) -> None:
        if ttl is not None:
            entries = self.entries
            cutoff = now - ttl
            while entries and entries[0][1] < cutoff:
                entries.popleft()


def _data(event: Message) -> str | bytes:
    # The payload alone: an event dict would cost ~200 bytes more per kept publication.
    text: str | None = event.get("text")
    return text if text is not None else bytes(event["bytes"])


class MemoryBackend(BrokerBackend):
    """Delivers published messages straight to this process's subscribers."""

    supports_history = True
    supports_presence = True

    def __init__(self) -> None:
        self._deliver: Deliver | None = None
        # Each topic's members by client id, and how many connections each user has there.
        self._members: dict[str, dict[str, Member]] = {}
        self._users: dict[str, dict[str, int]] = {}
        # Least recently used first: streams unused for POSITION_TTL are dropped from the front.
        self._streams: OrderedDict[str, _Stream] = OrderedDict()

    async def start(self, deliver: Deliver) -> None:
        """Remember where to deliver; there is nothing to connect to."""
        self._deliver = deliver

    async def stop(self) -> None:
        """Forget the delivery callback and the members (history is kept: the process still
        has it). A member is a connection of this run: a leave that comes after the stop
        (a shutdown that timed out) finds no writer to remove it, so it would stay listed in
        the next run of the same app."""
        self._deliver = None
        self._members.clear()
        self._users.clear()

    async def subscribe(self, topic: str) -> None:
        """Nothing to do: every local topic is already reachable."""

    async def unsubscribe(self, topic: str) -> None:
        """Nothing to do."""

    async def publish(self, topic: str, event: Message, exclude: str | None = None) -> None:
        """Fan out to local subscribers before returning."""
        if self._deliver is not None:
            self._deliver(topic, event, exclude, None)

    def _stream(self, topic: str, policy: HistoryPolicy, now: float) -> _Stream:
        streams = self._streams
        stream = streams.get(topic)
        if stream is None:
            # Forget streams nobody published to or read for POSITION_TTL (oldest first).
            cutoff = now - POSITION_TTL
            while streams and next(iter(streams.values())).touched < cutoff:
                streams.popitem(last=False)
            stream = streams[topic] = _Stream(policy.size, now)
        else:
            streams.move_to_end(topic)
            stream.touched = now
        stream.expire(policy.ttl, now)
        return stream

    async def publish_with_history(
        self, topic: str, event: Message, exclude: str | None, policy: HistoryPolicy
    ) -> StreamPosition:
        """Append to the topic's ring, then fan out with the new position."""
        now = time.monotonic()
        stream = self._stream(topic, policy, now)
        stream.offset += 1
        stream.entries.append((stream.offset, now, _data(event)))
        position = StreamPosition(stream.epoch, stream.offset)
        if self._deliver is not None:
            self._deliver(topic, event, exclude, position)
        return position

    async def read_history(
        self,
        topic: str,
        policy: HistoryPolicy,
        *,
        after: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> StreamRead:
        """Read the topic's ring (see `BrokerBackend.read_history`)."""
        stream = self._stream(topic, policy, time.monotonic())
        entries = stream.entries
        oldest = entries[0][0] if entries else stream.offset + 1
        # Offsets in the ring are consecutive: the ones after `after` are a slice.
        skip = 0 if after is None else max(0, min(len(entries), after - oldest + 1))
        count = len(entries) - skip
        if limit is not None:
            count = max(0, min(count, limit))
        if reverse:
            picked = [entries[i] for i in range(len(entries) - 1, len(entries) - 1 - count, -1)]
        else:
            picked = [entries[i] for i in range(skip, skip + count)]
        epoch = stream.epoch
        publications = [Publication(offset, epoch, data) for offset, _, data in picked]
        return StreamRead(StreamPosition(epoch, stream.offset), oldest, publications)

    async def presence_add(self, topic: str, member: Member) -> None:
        """Record the member (replacing one with the same client id, in its place)."""
        members = self._members.get(topic)
        old = None if members is None else members.get(member.client_id)
        if old is not None and old.user != member.user:
            await self.presence_remove(topic, member.client_id)
            old = None
        self._members.setdefault(topic, {})[member.client_id] = member
        if old is None and member.user is not None:
            users = self._users.setdefault(topic, {})
            users[member.user] = users.get(member.user, 0) + 1

    async def presence_remove(self, topic: str, client_id: str) -> None:
        """Forget the member; topics and users left empty are forgotten too."""
        members = self._members.get(topic)
        member = None if members is None else members.pop(client_id, None)
        if member is None:
            return
        if not members:
            del self._members[topic]
        if member.user is not None:
            users = self._users[topic]
            users[member.user] -= 1
            if not users[member.user]:
                del users[member.user]
                if not users:
                    del self._users[topic]

    async def presence_members(self, topic: str) -> list[Member]:
        """The members, in the order they joined."""
        return list(self._members.get(topic, {}).values())

    async def presence_stats(self, topic: str) -> PresenceStats:
        """Counted, not listed."""
        return PresenceStats(len(self._members.get(topic, ())), len(self._users.get(topic, ())))

    async def publish_presence(self, topic: str, diff: str) -> None:
        """Deliver the diff to this process's subscribers."""
        if self._deliver is not None:
            self._deliver(topic, {"type": PRESENCE_EVENT, "text": diff}, None, None)

    async def publish_control(self, command: str) -> int:
        """Run the command here: this process holds every connection."""
        return 0 if self.control is None else await self.control(command)
