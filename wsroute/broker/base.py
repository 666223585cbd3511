"""The backend contract: the few methods a broker engine (memory, Redis, …) implements.

The `Broker` keeps the local subscribers of each topic and fans out to them itself; a
backend only moves encoded messages between processes. It is told when this process
starts and stops needing a topic, so a remote backend subscribes only to topics some local
connection wants.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from starlette.types import Message

Deliver = Callable[[str, Message, "str | None"], None]
"""Called by a backend for every message that reaches this process: (topic, event, exclude).

`event` is the ASGI ``websocket.send`` event to hand to each local subscriber; `exclude`
is the subscriber id that must not get it (the sender of a broadcast that excluded itself).
Subscriber ids are unique only within one process: a backend that crosses processes must
pass `exclude` back only in the process that published (tag it with a node id).
"""


class BrokerBackend(ABC):
    """A broker engine. Subclass it to plug in another transport.

    Calls arrive in this order: `start` once, then any number of `subscribe`,
    `unsubscribe` and `publish`, then `stop` once. `subscribe`/`unsubscribe` come only on
    the first local subscriber of a topic and after the last one leaves.
    """

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

    @abstractmethod
    async def publish(self, topic: str, event: Message, exclude: str | None = None) -> None:
        """Send `event` to every subscriber of `topic` in every process sharing this backend.

        Raises `BrokerUnavailable` when the message cannot be handed to the transport:
        nothing is ever dropped silently.
        """
