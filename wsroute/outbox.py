"""The bounded outgoing queue of one socket and the writer task that drains it.

A handler's own `send` goes straight to the server when nothing is queued (the common
echo case costs no task switch). Broadcasts never wait for a client: they are queued and
a writer task sends them, so one client that stops reading only fills its own queue.
When the queue is full the slow-consumer policy decides: drop the oldest message, drop
the newest, or disconnect the client with 1008 (the default). Under the fastlane
protocol a broadcast to an idle socket is written straight to its transport instead,
its frame encoded once for all subscribers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Literal

from starlette.types import Message, Send

from wsroute.errors import ChannelClosed
from wsroute.frames import FastWrite

SlowConsumerPolicy = Literal["disconnect", "drop_oldest", "drop_newest"]
"""What happens to a client whose outgoing queue is full."""

logger = logging.getLogger("wsroute")


def event_size(event: Message) -> int:
    """Approximate payload size of a send event, for the byte bound (characters for text)."""
    text = event.get("text")
    if text is not None:
        return len(text)
    data = event.get("bytes")
    return len(data) if data is not None else 0


class Outbox:
    """Outgoing events of one physical socket, in order, bounded in count and bytes."""

    __slots__ = (
        "_busy",
        "_bytes",
        "_fast",
        "_max_bytes",
        "_max_messages",
        "_on_overflow",
        "_policy",
        "_queue",
        "_send",
        "_waiter",
        "_writer",
        "closed",
        "dropped",
    )

    def __init__(
        self,
        send: Send,
        *,
        max_messages: int,
        max_bytes: int | None,
        policy: SlowConsumerPolicy,
        on_overflow: Callable[[], None],
        fast: FastWrite | None = None,
    ) -> None:
        self._send = send
        self._fast = fast
        # Made on first need: an idle connection never queues, and an empty deque is ~600 bytes.
        self._queue: deque[Message] | None = None
        self._bytes = 0
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._policy = policy
        self._on_overflow = on_overflow
        self._busy = False
        self._waiter: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self.closed = False
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._queue) if self._queue else 0

    async def send(self, event: Message) -> None:
        """Send `event` now if the socket is idle, else queue it behind what is waiting."""
        if self.closed:
            raise ChannelClosed("the WebSocket connection is closed")
        if self._busy or self._queue:
            self.push(event)
            return
        self._busy = True
        try:
            await self._send(event)
        except Exception as exc:
            self.abort()
            raise ChannelClosed(f"the WebSocket connection is closed ({exc!r})") from exc
        finally:
            self._busy = False
        if self._queue:
            self._wake()

    def push(self, event: Message) -> None:
        """Queue `event` without waiting; apply the slow-consumer policy when full."""
        if self.closed:
            return
        queue = self._queue
        if self._fast is not None and not queue and not self._busy and self._fast(event):
            # Fastlane: the shared frame went straight to the transport, nothing to queue.
            return
        if queue is None:
            queue = self._queue = deque()
        size = event_size(event) if self._max_bytes is not None else 0
        if len(queue) >= self._max_messages or (
            self._max_bytes is not None and queue and self._bytes + size > self._max_bytes
        ):
            if self._policy == "drop_newest":
                self.dropped += 1
                return
            if self._policy == "drop_oldest":
                while queue and (
                    len(queue) >= self._max_messages
                    or (self._max_bytes is not None and self._bytes + size > self._max_bytes)
                ):
                    old = queue.popleft()
                    self.dropped += 1
                    if self._max_bytes is not None:
                        self._bytes -= event_size(old)
            else:
                self.abort()
                self._on_overflow()
                return
        queue.append(event)
        self._bytes += size
        if not self._busy:
            self._wake()

    def _wake(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._run())
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _run(self) -> None:
        queue = self._queue
        assert queue is not None, "the writer starts only after something was queued"
        loop = asyncio.get_running_loop()
        while not self.closed:
            if self._busy or not queue:
                self._waiter = loop.create_future()
                await self._waiter
                self._waiter = None
                continue
            event = queue.popleft()
            if self._max_bytes is not None:
                self._bytes -= event_size(event)
            self._busy = True
            try:
                await self._send(event)
            except Exception:
                # The client is gone; the connection's receive loop reports how it ended.
                self.abort()
                return
            finally:
                self._busy = False

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued was handed to the server; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self._queue or self._busy) and not self.closed:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return not self._queue

    def abort(self) -> None:
        """Stop sending: drop what is queued and end the writer."""
        self.closed = True
        if self._queue:
            self._queue.clear()
        self._bytes = 0
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()
        self._writer = None
