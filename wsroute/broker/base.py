"""The backend contract: the few methods a broker engine (memory, Redis, …) implements.

The `Broker` keeps the local subscribers of each topic and fans out to them itself; a
backend only moves encoded messages between processes. It is told when this process
starts and stops needing a topic, so a remote backend subscribes only to topics some local
connection wants.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import ClassVar

from starlette.types import Message

from wsroute.history import HistoryPolicy, StreamPosition, StreamRead
from wsroute.presence import Member, PresenceDiff, PresenceStats, encode_state

Deliver = Callable[[str, Message, "str | None", "StreamPosition | None"], None]
"""Called by a backend for every message that reaches this process: (topic, event, exclude,
position).

`event` is the ASGI ``websocket.send`` event to hand to each local subscriber; `exclude`
is the subscriber id that must not get it (the sender of a broadcast that excluded itself).
Subscriber ids are unique only within one process: a backend that crosses processes must
pass `exclude` back only in the process that published (tag it with a node id).
`position` is the publication's place in its topic's stream (None for a topic without
history): every process must see a topic's publications in offset order.
"""


class BrokerBackend(ABC):
    """A broker engine. Subclass it to plug in another transport.

    Calls arrive in this order: `start` once, then any number of `subscribe`,
    `unsubscribe`, `publish` (and, with history, `publish_with_history` and `read_history`),
    then `stop` once. `subscribe`/`unsubscribe` come only on the first local subscriber of a
    topic and after the last one leaves.

    A backend that keeps history sets `supports_history` and implements the two history
    methods; the broker refuses to start when a topic asks for history from one that does not.
    """

    supports_history: ClassVar[bool] = False
    """True when `publish_with_history` and `read_history` are implemented."""

    supports_presence: ClassVar[bool] = False
    """True when the ``presence_*`` methods are implemented."""

    control: Callable[[str], Awaitable[int]] | None = None
    """Set by the broker before `start`: carries out a control command on this process's
    connections and returns how many it affected (see `publish_control`)."""

    @abstractmethod
    async def start(self, deliver: Deliver) -> None:
        """Connect; from now on call `deliver` for every message published to a subscribed topic."""

    @abstractmethod
    async def stop(self) -> None:
        """Disconnect and release every task and connection."""

    @abstractmethod
    async def subscribe(self, topic: str) -> None:
        """Start receiving messages published to `topic` (by any process)."""

    @abstractmethod
    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving messages for `topic`."""

    def receiving(self, topic: str) -> bool:
        """Whether what is published to `topic` from now on reaches this process: False while
        a subscription is down (a remote backend reconnecting). A recovery that cannot count
        on it is not complete. True by default."""
        return True

    @abstractmethod
    async def publish(self, topic: str, event: Message, exclude: str | None = None) -> None:
        """Send `event` to every subscriber of `topic` in every process sharing this backend.

        Raises `BrokerUnavailable` when the message cannot be handed to the transport:
        nothing is ever dropped silently.
        """

    async def publish_with_history(
        self, topic: str, event: Message, exclude: str | None, policy: HistoryPolicy
    ) -> StreamPosition:
        """Give `event` the next offset of the topic's stream, store it (keeping what
        `policy` says) and publish it as `publish` does, with its position, in one atomic
        step: the order of offsets is the order of delivery in every process.

        Returns the publication's position. Raises `BrokerUnavailable` as `publish` does.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no history")

    async def read_history(
        self,
        topic: str,
        policy: HistoryPolicy,
        *,
        after: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> StreamRead:
        """Read the topic's stream in one atomic step: its position, its oldest stored
        offset, and the stored publications with an offset above `after` (None: all), oldest
        first or newest first with `reverse`, at most `limit` (None: no limit; 0: none).

        A topic never published to gets its epoch here (offset 0), so that a client that
        subscribed before the first publication can recover. Publications older than
        ``policy.ttl`` are not returned.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no history")

    async def presence_add(self, topic: str, member: Member) -> None:
        """Record `member` on `topic`, seen by every process (a client id added again
        replaces its member)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no presence")

    async def presence_remove(self, topic: str, client_id: str) -> None:
        """Remove a member (nothing when it is not there)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no presence")

    async def presence_members(self, topic: str) -> list[Member]:
        """Every member of `topic`, from every process."""
        raise NotImplementedError(f"{type(self).__name__} keeps no presence")

    async def presence_stats(self, topic: str) -> PresenceStats:
        """How many members and distinct users `topic` has, without reading the members."""
        raise NotImplementedError(f"{type(self).__name__} keeps no presence")

    async def presence_state(self, topic: str) -> str:
        """Every member of `topic` as the JSON object a ``presence=state`` frame carries
        (client id -> ``{"user", "info"}``). This default encodes `presence_members`; a
        backend that stores that JSON hands it on as it is (Redis does)."""
        return encode_state(await self.presence_members(topic))

    async def publish_presence(self, topic: str, diff: str) -> None:
        """Deliver a presence diff (its JSON) to every process: each calls its `Deliver` with
        ``{"type": PRESENCE_EVENT, "text": diff}``, no exclude and no position.

        A backend whose processes can die without running their leaves must remove their
        members itself within a bounded time, and publish the leaves (Redis: heartbeats).
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no presence")

    async def presence_update(self, topic: str, diff: PresenceDiff) -> None:
        """Store one batch of this process's joins and leaves on `topic` and announce it
        (`publish_presence` of ``diff.encode()``). This default does it one member at a
        time; a remote backend does better in one step (Redis: one script)."""
        for member in diff.leaves.values():
            await self.presence_remove(topic, member.client_id)
        for member in diff.joins.values():
            await self.presence_add(topic, member)
        await self.publish_presence(topic, diff.encode())

    async def publish_control(self, command: str) -> int:
        """Have every process sharing this backend run `command` through its `control`
        (this one included, when it serves connections); the sum of their answers, gathered
        within a bounded time."""
        raise NotImplementedError(f"{type(self).__name__} cannot reach other processes' clients")
