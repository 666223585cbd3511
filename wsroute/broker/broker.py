"""`Broker`: publish to any topic from anywhere, and the local fan-out to subscribers."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any, Protocol

from pydantic_core import core_schema
from starlette.types import Message

from wsroute.broker.base import BrokerBackend
from wsroute.errors import RegistrationError
from wsroute.messages import encode

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
        self._topics: dict[str, dict[Subscriber, None]] = {}
        self._subscribing: dict[str, asyncio.Future[None]] = {}
        self._started = False
        self._start_lock = asyncio.Lock()

    async def broadcast_to(self, topic: str, message: object, *, exclude: str | None = None) -> None:
        """Send `message` to every subscriber of `topic` (see `IntoMessage` for what can be sent).

        Raises `TypeError` for a message that cannot be encoded and `BrokerUnavailable`
        when the backend cannot take it; nothing is dropped silently.
        """
        event = encode(message)
        if not self._started:
            await self.start()
        await self.backend.publish(topic, event, exclude)

    async def publish_event(self, topic: str, event: Message, exclude: str | None = None) -> None:
        """Publish an already encoded ASGI send event (what `broadcast_to` does after `encode`)."""
        if not self._started:
            await self.start()
        await self.backend.publish(topic, event, exclude)

    async def start(self) -> None:
        """Start the backend (the app's lifespan calls this; it is also done on first use)."""
        async with self._start_lock:
            if not self._started:
                await self.backend.start(self._deliver)
                self._started = True

    async def stop(self) -> None:
        """Stop the backend; local subscriptions are forgotten."""
        async with self._start_lock:
            if self._started:
                self._started = False
                self._topics.clear()
                self._subscribing.clear()
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

    async def subscribe(self, topic: str, subscriber: Subscriber) -> None:
        """Add a local subscriber; the backend hears of the topic on its first subscriber."""
        if not self._started:
            await self.start()
        subscribers = self._topics.get(topic)
        if subscribers is None:
            self._topics[topic] = {subscriber: None}
            confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._subscribing[topic] = confirmed
            try:
                await self.backend.subscribe(topic)
            finally:
                if self._subscribing.get(topic) is confirmed:
                    del self._subscribing[topic]
                confirmed.set_result(None)
        else:
            subscribers[subscriber] = None
            pending = self._subscribing.get(topic)
            if pending is not None:
                # The first subscriber's backend subscribe is still in flight: return only
                # once it is confirmed, so this subscriber's join cannot run before it.
                await asyncio.wait({pending})

    async def unsubscribe(self, topic: str, subscriber: Subscriber) -> None:
        """Remove a local subscriber; the backend hears of it when the topic has none left."""
        subscribers = self._topics.get(topic)
        if subscribers is None or subscribers.pop(subscriber, 0) is not None:
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

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        # FastAPI builds a schema for each HTTP route parameter: fail at registration
        # with the fix rather than with an obscure pydantic error.
        raise RegistrationError(
            "a bare `Broker` parameter only works in wsroute WebSocket handlers; in an HTTP "
            "route use the dependency `broker: AppBroker` (from wsroute import AppBroker)"
        )

    def _deliver(self, topic: str, event: Message, exclude: str | None) -> None:
        subscribers = self._topics.get(topic)
        if not subscribers:
            return
        # A snapshot: delivering may evict a slow subscriber, which unsubscribes later.
        if exclude is None:
            for subscriber in tuple(subscribers):
                subscriber.deliver(event)
        else:
            for subscriber in tuple(subscribers):
                if subscriber.subscriber_id != exclude:
                    subscriber.deliver(event)
