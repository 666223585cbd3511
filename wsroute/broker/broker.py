"""`Broker`: publish to any topic from anywhere, and the local fan-out to subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

from pydantic_core import core_schema
from starlette.types import Message

from wsroute.broker.base import BrokerBackend
from wsroute.control import Clients, command
from wsroute.errors import PositionLost, RegistrationError
from wsroute.guards import Reject
from wsroute.history import (
    DEFAULT_RECOVERY_LIMIT,
    Publication,
    StreamPosition,
    StreamRead,
    TopicOptions,
    TopicRules,
)
from wsroute.messages import encode
from wsroute.presence import (
    DEFAULT_BATCH,
    PRESENCE_EVENT,
    Member,
    PresenceDiff,
    PresenceFeed,
    PresenceStats,
    PresenceWriter,
)

logger = logging.getLogger("wsroute")

_ids = itertools.count(1)


def new_subscriber_id() -> str:
    """A process-unique id for a subscriber (used to exclude the sender of a broadcast)."""
    return f"s{next(_ids)}"


class Subscriber(Protocol):
    """What the broker fans out to: one connection (or multiplexed topic)."""

    @property
    def subscriber_id(self) -> str:
        """Id compared against a broadcast's `exclude`."""
        ...

    def deliver(self, event: Message) -> None:
        """Queue `event` for sending; must not block."""
        ...

    def deliver_at(self, event: Message, position: StreamPosition) -> None:
        """Queue a publication with its stream position (subscribers that asked for
        positions only); must not block."""
        ...


class PresenceWatcher(Protocol):
    """What the broker hands presence diffs to: a subscription that asked for them."""

    def deliver_presence(self, diff: str) -> None:
        """Queue a presence diff (its JSON); must not block."""
        ...


def backend_from_url(url: str) -> BrokerBackend:
    """Build a backend from a URL: ``memory://`` or ``redis://host:port/db`` (``rediss://`` too)."""
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        from wsroute.broker.memory import MemoryBackend

        return MemoryBackend()
    if scheme in ("redis", "rediss", "unix"):
        try:
            from wsroute.broker.redis import RedisBackend
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(f"broker {url!r} needs the redis extra: pip install 'wsroute[redis]'") from exc
        return RedisBackend(url)
    raise ValueError(f"unknown broker URL {url!r}: use 'memory://' or 'redis://host:port/db'")


class Broker:
    """Publishes messages to topics; every subscriber of the topic, in every process, gets them.

    Get it as `router.broker`, by annotating a handler parameter with `Broker`, or in an
    HTTP route with the `AppBroker` dependency. A message is encoded once per call.
    """

    def __init__(self, backend: BrokerBackend | str = "memory://") -> None:
        self.backend = backend_from_url(backend) if isinstance(backend, str) else backend
        self.topics = TopicRules()
        """The options of each configured route pattern (`topic`)."""
        # Each topic's local subscribers; True for one that asked for stream positions.
        self._topics: dict[str, dict[Subscriber, bool]] = {}
        self._subscribing: dict[str, asyncio.Future[None]] = {}
        self._started = False
        self._start_lock = asyncio.Lock()
        self._warned: set[str] = set()
        self.node = secrets.token_urlsafe(6)
        """Random id of this broker: the first part of its connections' client ids."""
        self._presence = PresenceWriter(self._store_presence, DEFAULT_BATCH)
        self.clients = Clients()
        """This process's connections that can be named (by client id or user)."""
        self.backend.control = self.clients.handle
        self._watchers: dict[str, dict[PresenceWatcher, None]] = {}

    def topic(
        self,
        pattern: str,
        *,
        history: int = 0,
        history_ttl: float | None = None,
        recovery_limit: int = DEFAULT_RECOVERY_LIMIT,
        presence: bool = False,
    ) -> TopicOptions:
        """Configure the topics of a route pattern (what ``WsRouter.topic`` does, for a
        broker used without a router, e.g. a write-only publisher's): `history` publications
        are kept per topic, each for at most `history_ttl` seconds."""
        from wsroute.routes import compile_route, default_rank  # routes imports this module

        options = TopicOptions(pattern, history, history_ttl, recovery_limit, presence)
        try:
            regex, _ = compile_route(pattern)
        except ValueError as exc:
            raise RegistrationError(f"ws.topic({pattern!r}): {exc}") from None
        self.topics.add(options, regex, default_rank(pattern))
        return options

    async def broadcast_to(
        self, topic: str, message: object, *, exclude: str | None = None
    ) -> StreamPosition | None:
        """Send `message` to every subscriber of `topic` (see `IntoMessage` for what can be sent).

        On a topic with history the message is stored too; its position is returned
        (None on a topic without history). Raises `TypeError` for a message that cannot be
        encoded and `BrokerUnavailable` when the backend cannot take it; nothing is dropped
        silently.
        """
        return await self.publish_event(topic, encode(message), exclude)

    async def publish_event(
        self, topic: str, event: Message, exclude: str | None = None
    ) -> StreamPosition | None:
        """Publish an already encoded ASGI send event (what `broadcast_to` does after `encode`)."""
        if not self._started:
            await self.start()
        if self.topics:
            options = self.topics.get(topic)
            if options is not None and options.policy is not None:
                return await self.backend.publish_with_history(topic, event, exclude, options.policy)
        await self.backend.publish(topic, event, exclude)
        return None

    def _history_options(self, topic: str) -> TopicOptions:
        options = self.topics.get(topic)
        if options is None or options.policy is None:
            raise ValueError(
                f"topic {topic!r} has no history: configure its pattern with ws.topic(pattern, history=N)"
            )
        return options

    async def history(
        self,
        topic: str,
        *,
        since: tuple[str, int] | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> list[Publication]:
        """The stored publications of `topic`, oldest first (newest first with `reverse`),
        at most `limit` of them.

        `since` is an ``(epoch, offset)`` position: only the publications after it are
        returned, and `PositionLost` is raised when the stream no longer holds all of them
        (another epoch, or trimmed by size or age). Raises `ValueError` for a topic whose
        pattern has no history, and `BrokerUnavailable` when the backend cannot be read.
        """
        read = await self._read(topic, since, limit, reverse)
        return read.publications

    async def position(self, topic: str) -> StreamPosition:
        """The current position of `topic`'s stream: its epoch and the offset of its last
        publication (0 before the first)."""
        read = await self._read(topic, None, 0, False)
        return read.position

    async def _read(
        self, topic: str, since: tuple[str, int] | None, limit: int | None, reverse: bool
    ) -> StreamRead:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 or None, not {limit!r}")
        read = await self.read_stream(topic, None if since is None else since[1], limit, reverse)
        if since is not None and not read.holds_all_after(StreamPosition(*since)):
            raise PositionLost(
                f"the stream of {topic!r} no longer holds every publication after {since[0]}:{since[1]} "
                f"(it is at {read.position.epoch}:{read.position.offset}, oldest kept {read.oldest})"
            )
        return read

    async def read_stream(
        self, topic: str, after: int | None, limit: int | None, reverse: bool = False
    ) -> StreamRead:
        """The backend's atomic read of `topic`'s stream (see `BrokerBackend.read_history`)."""
        options = self._history_options(topic)
        assert options.policy is not None
        if not self._started:
            await self.start()
        return await self.backend.read_history(
            topic, options.policy, after=after, limit=limit, reverse=reverse
        )

    def receiving(self, topic: str) -> bool:
        """Whether what is published to `topic` from now on reaches this process (False while
        the backend's subscription is down: see `BrokerBackend.receiving`)."""
        return self.backend.receiving(topic)

    async def start(self) -> None:
        """Start the backend (the app's lifespan calls this; it is also done on first use).

        Raises `RegistrationError` when a topic asks for history from a backend that has none.
        """
        async with self._start_lock:
            if not self._started:
                backend = self.backend
                if not backend.supports_history:
                    wanting = [options.pattern for options in self.topics if options.history]
                    if wanting:
                        raise RegistrationError(
                            f"{type(backend).__name__} keeps no history, but ws.topic() asks for it "
                            f"on {', '.join(map(repr, wanting))}: use a backend with history "
                            "(memory:// or redis://)"
                        )
                if not backend.supports_presence:
                    wanting = [options.pattern for options in self.topics if options.presence]
                    if wanting:
                        raise RegistrationError(
                            f"{type(backend).__name__} keeps no presence, but ws.topic() asks for it "
                            f"on {', '.join(map(repr, wanting))}"
                        )
                await backend.start(self._deliver)
                self._started = True

    async def stop(self) -> None:
        """Stop the backend; local subscriptions are forgotten."""
        async with self._start_lock:
            if self._started:
                await self._presence.close()
                self._started = False
                self._topics.clear()
                self._subscribing.clear()
                self._watchers.clear()
                await self.backend.stop()

    async def __aenter__(self) -> Broker:
        """Start the broker; with a remote backend this is the write-only publisher for
        code that runs no ASGI app (a worker, a cron script):

        ```python
        async with Broker("redis://127.0.0.1:6379/0") as broker:
            await broker.broadcast_to("/rooms/lobby", "maintenance in 5 minutes")
        ```
        """
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop the broker."""
        await self.stop()

    async def add_subscriber(self, topic: str, subscriber: Subscriber, *, positions: bool = False) -> None:
        """Add a local subscriber; the backend hears of the topic on its first subscriber.

        With `positions`, publications that have a stream position reach it through
        `Subscriber.deliver_at`."""
        if not self._started:
            await self.start()
        subscribers = self._topics.get(topic)
        if subscribers is None:
            self._topics[topic] = {subscriber: positions}
            confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._subscribing[topic] = confirmed
            try:
                await self.backend.subscribe(topic)
            finally:
                if self._subscribing.get(topic) is confirmed:
                    del self._subscribing[topic]
                confirmed.set_result(None)
        else:
            subscribers[subscriber] = positions
            pending = self._subscribing.get(topic)
            if pending is not None:
                # The first subscriber's backend subscribe is still in flight: return only
                # once it is confirmed, so this subscriber's join cannot run before it.
                await asyncio.wait({pending})

    async def remove_subscriber(self, topic: str, subscriber: Subscriber) -> None:
        """Remove a local subscriber; the backend hears of it when the topic has none left."""
        subscribers = self._topics.get(topic)
        if subscribers is None or subscribers.pop(subscriber, None) is None:
            return
        if not subscribers:
            del self._topics[topic]
            if self._started:
                await self.backend.unsubscribe(topic)

    def subscribers(self, topic: str) -> Iterator[Subscriber]:
        """The local subscribers of `topic` (a snapshot)."""
        return iter(tuple(self._topics.get(topic, ())))

    def local_topics(self) -> dict[str, int]:
        """Each topic with local subscribers and how many it has (for tests and metrics)."""
        return {topic: len(subs) for topic, subs in self._topics.items()}

    # --- server-side control -------------------------------------------------------------

    async def disconnect(
        self, *, client_id: str | None = None, user: str | None = None, code: int = 1000, reason: str = ""
    ) -> int:
        """Close a client's connection, or every connection of a `user` (the user its
        presence gave it), in whichever process holds them; a multiplexed socket is closed
        whole. Their leave handlers run with `code`. Returns how many sockets were closed."""
        text = command("disconnect", client_id=client_id, user=user, code=code, reason=reason)
        return await self._control(text)

    async def unsubscribe(
        self,
        topic: str,
        *,
        client_id: str | None = None,
        user: str | None = None,
        code: int = 1000,
        reason: str = "",
    ) -> int:
        """Close `topic` only, for a client or every connection of a user: a multiplexed
        socket gets ``·UNSUBSCRIBE·topic·code·reason`` and stays open; a dedicated one is
        closed. Its leave handler runs with `code`. Returns how many were closed."""
        text = command("unsubscribe", topic=topic, client_id=client_id, user=user, code=code, reason=reason)
        return await self._control(text)

    async def subscribe(self, client_id: str, topic: str) -> int:
        """Subscribe the multiplexed socket of `client_id` to `topic` from the server, as if
        its client had sent ``SUBSCRIBE`` (the topic's guards run; the client gets the
        ``OK``). Returns 1 when subscribed; 0 when no multiplexed socket has that client id
        or it has that topic already (idempotent: a retry changes nothing; a SUBSCRIBE of
        the client's own still in its guards is waited for, and if it is refused this call
        tries itself); raises `Reject` with the status of a refusal (403 from a guard, 404
        no route, 429 too many topics…)."""
        result = await self._control(command("subscribe", client_id=client_id, topic=topic))
        if result < 0:
            raise Reject(-result, f"subscribing {client_id} to {topic} was refused")
        return min(result, 1)

    async def _control(self, text: str) -> int:
        if not self._started:
            await self.start()
        return await self.backend.publish_control(text)

    # --- presence -----------------------------------------------------------------------

    def presence_options(self, topic: str) -> TopicOptions:
        """The options of `topic`'s pattern; `ValueError` when it has no presence."""
        options = self.topics.get(topic)
        if options is None or not options.presence:
            raise ValueError(
                f"topic {topic!r} has no presence: configure its pattern with "
                "ws.topic(pattern, presence=True)"
            )
        return options

    def has_presence(self, topic: str) -> bool:
        """True when `topic`'s pattern has presence on."""
        options = self.topics.get(topic) if self.topics else None
        return options is not None and options.presence

    async def presence(self, topic: str) -> list[Member]:
        """The members of `topic` in every process sharing the backend: each with its
        `client_id`, `user` and `info`. Raises `ValueError` for a topic without presence."""
        await self._before_reading(topic)
        return await self.backend.presence_members(topic)

    async def presence_stats(self, topic: str) -> PresenceStats:
        """How many clients (connections) and distinct users `topic` has, without
        transferring its member list."""
        await self._before_reading(topic)
        return await self.backend.presence_stats(topic)

    async def presence_state(self, topic: str) -> str:
        """The members of `topic` as JSON text, ``{client_id: {"user": …, "info": …}}`` (what
        a ``presence=state`` frame carries): to hand the list on, to clients or in an HTTP
        response, without a `Member` object per member (on Redis, as Redis returned it)."""
        await self._before_reading(topic)
        return await self.backend.presence_state(topic)

    async def _before_reading(self, topic: str) -> None:
        # A read must see this process's own joins and leaves: the pending batch goes first.
        self.presence_options(topic)
        if not self._started:
            await self.start()
        await self._presence.settle()

    @contextlib.asynccontextmanager
    async def presence_changes(self, topic: str) -> AsyncIterator[PresenceFeed]:
        """The joins and leaves of `topic`, from every process, as they are announced
        (batched like the clients' diffs), for app code in this process:

        ```python
        async with broker.presence_changes("/rooms/lobby") as changes:
            async for change in changes:
                for member in change.joins:
                    print(member.user, "is here")
        ```
        """
        self.presence_options(topic)
        feed = PresenceFeed(topic)
        await self.add_subscriber(topic, feed)
        self.watch_presence(topic, feed)
        try:
            yield feed
        finally:
            self.unwatch_presence(topic, feed)
            await self.remove_subscriber(topic, feed)

    @property
    def presence_batch(self) -> float:
        """Seconds joins and leaves of a topic are gathered before they are stored and
        announced as one diff (default 0.05)."""
        return self._presence.batch

    @presence_batch.setter
    def presence_batch(self, seconds: float) -> None:
        self._presence.batch = seconds

    async def track(self, topic: str, member: Member) -> None:
        """Make `member` present on `topic`: stored and announced with the next batch
        (within `presence_batch` seconds); this process's own reads see it at once."""
        if not self._started:
            await self.start()
        self._presence.join(topic, member)

    async def untrack(self, topic: str, client_id: str) -> None:
        """Remove a member tracked by this process, with the next batch."""
        self._presence.leave(topic, client_id)

    def watch_presence(self, topic: str, watcher: PresenceWatcher) -> None:
        """Hand `watcher` every presence diff of `topic` (it must be subscribed to the topic)."""
        self._watchers.setdefault(topic, {})[watcher] = None

    def unwatch_presence(self, topic: str, watcher: PresenceWatcher) -> None:
        """Stop handing `watcher` the diffs of `topic`."""
        watchers = self._watchers.get(topic)
        if watchers is not None and watchers.pop(watcher, 0) is None and not watchers:
            del self._watchers[topic]

    def _deliver_presence(self, topic: str, diff: str) -> None:
        watchers = self._watchers.get(topic)
        if watchers:
            for watcher in tuple(watchers):
                watcher.deliver_presence(diff)

    async def _store_presence(self, topic: str, diff: PresenceDiff) -> None:
        await self.backend.presence_update(topic, diff)

    async def wait_presence_sent(self) -> None:
        """Wait until the joins and leaves gathered so far have gone out (tests, shutdown)."""
        await self._presence.settle()

    def _check_unstored(self, topic: str) -> None:
        """Warn (once per pattern) when a publication without a position reaches a topic
        with history: its publisher has no ``topic()`` configuration, so it was not stored
        and no client will be replayed it."""
        options = self.topics.get(topic)
        if options is not None and options.policy is not None and options.pattern not in self._warned:
            self._warned.add(options.pattern)
            logger.warning(
                "a broadcast to %s was published without history: it is not stored, and clients "
                "recovering miss it. Configure every publisher of %r (Broker.topic or the app's "
                "ws.topic) the same way.",
                topic, options.pattern,
            )

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        # FastAPI builds a schema for each HTTP route parameter: fail at registration
        # with the fix rather than with an obscure pydantic error.
        raise RegistrationError(
            "a bare `Broker` parameter only works in wsroute WebSocket handlers; in an HTTP "
            "route use the dependency `broker: AppBroker` (from wsroute import AppBroker)"
        )

    def _deliver(
        self, topic: str, event: Message, exclude: str | None, position: StreamPosition | None = None
    ) -> None:
        subscribers = self._topics.get(topic)
        if not subscribers:
            return
        if position is None:
            # Checked even without `ws.topic`: another process may have presence on this
            # topic, and its diffs are for presence watchers, never for a socket.
            if event["type"] == PRESENCE_EVENT:
                self._deliver_presence(topic, event["text"])
                return
            if self.topics:
                self._check_unstored(topic)
        else:
            # A snapshot: delivering may evict a slow subscriber, which unsubscribes later.
            for subscriber, positions in tuple(subscribers.items()):
                if exclude is None or subscriber.subscriber_id != exclude:
                    if positions:
                        subscriber.deliver_at(event, position)
                    else:
                        subscriber.deliver(event)
            return
        if exclude is None:
            for subscriber in tuple(subscribers):
                subscriber.deliver(event)
        else:
            for subscriber in tuple(subscribers):
                if subscriber.subscriber_id != exclude:
                    subscriber.deliver(event)
