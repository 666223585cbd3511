"""The in-memory backend: one process, no setup; the default (``"memory://"``)."""

from __future__ import annotations

from starlette.types import Message

from wsroute.broker.base import BrokerBackend, Deliver


class MemoryBackend(BrokerBackend):
    """Delivers published messages straight to this process's subscribers."""

    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        """Remember where to deliver; there is nothing to connect to."""
        self._deliver = deliver

    async def stop(self) -> None:
        """Forget the delivery callback."""
        self._deliver = None

    async def subscribe(self, topic: str) -> None:
        """Nothing to do: every local topic is already reachable."""

    async def unsubscribe(self, topic: str) -> None:
        """Nothing to do."""

    async def publish(self, topic: str, event: Message, exclude: str | None = None) -> None:
        """Fan out to local subscribers before returning."""
        if self._deliver is not None:
            self._deliver(topic, event, exclude)
