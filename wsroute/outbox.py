"""The bounded outgoing queue of one socket and the writer task that drains it.

A handler's own `send` goes straight to the server when nothing is queued (the common
echo case costs no task switch). Broadcasts never wait for a client: on an idle socket
the send runs at once, and only a send the client's backpressure holds up continues in a
task, with later messages queued behind it; so one client that stops reading only fills
its own queue. When the queue is full the slow-consumer policy decides: drop the oldest
message, drop the newest, or disconnect the client with 1008 (the default). Under the
fastlane protocol a broadcast to an idle socket is written straight to its transport,
its frame encoded once for all subscribers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Coroutine
from typing import Literal, Protocol

from starlette.types import Message, Send

from wsroute.eager import Resume
from wsroute.errors import ChannelClosed
from wsroute.fastlane_extension import FastWrite

SlowConsumerPolicy = Literal["disconnect", "drop_oldest", "drop_newest"]
"""What happens to a client whose outgoing queue is full."""

logger = logging.getLogger("wsroute")


class Owner(Protocol):
    """The socket an outbox belongs to."""

    def evict(self) -> None:
        """The queue overflowed under the ``disconnect`` policy: end the socket (1008)."""


def event_size(event: Message) -> int:
    """Approximate payload size of a send event, for the byte bound (characters for text)."""
    text = event.get("text")
    if text is not None:
        return len(text)
    data = event.get("bytes")
    return len(data) if data is not None else 0


class Outbox:
    """Outgoing events of one physical socket, in order, bounded in count and bytes.

    Invariant: something is queued only while a send is in flight (`_busy`); the task
    that finishes that send drains the queue and then ends, so an idle socket owns no task.
    """

    __slots__ = (
        "_busy",
        "_bytes",
        "_drainer",
        "_fast",
        "_max_bytes",
        "_max_messages",
        "_owner",
        "_policy",
        "_queue",
        "_send",
        "_sent",
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
        owner: Owner,
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
        # Evicted on overflow; None once closed (a cycle through the socket, let go of).
        self._owner: Owner | None = owner
        self._busy = False
        self._drainer: asyncio.Task[None] | None = None
        # Made by `drain` while a direct send is in flight; that send's end sets it.
        self._sent: asyncio.Future[None] | None = None
        self.closed = False
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._queue) if self._queue else 0

    def fits(self, count: int, size: int) -> bool:
        """Whether `count` more events of `size` bytes in all fit in the queue even if none
        of them can be sent at once: a burst that must arrive whole (a recovery's replay),
        which the slow-consumer policy would otherwise cut short."""
        if len(self) + count > self._max_messages:
            return False
        return self._max_bytes is None or self._bytes + size <= self._max_bytes

    async def send(self, event: Message) -> None:
        """Send `event` now if the socket is idle (waiting on the client's backpressure,
        as a handler's own send should), else queue it behind what is in flight."""
        if self.closed:
            raise ChannelClosed("the WebSocket connection is closed")
        if self._busy:
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
            if self._queue and not self.closed:
                # Broadcasts queued behind this send while it waited; drained even when the
                # send was cancelled (a handler's own timeout): what comes next must not
                # overtake them.
                self._busy = True
                self._drainer = asyncio.get_running_loop().create_task(self._finish(None))
            sent = self._sent
            if sent is not None:
                self._sent = None
                sent.set_result(None)

    def push(self, event: Message) -> None:
        """Send or queue `event` without waiting; apply the slow-consumer policy when full.

        On an idle socket the server's send runs right away, and only a send that must
        wait (the client's TCP window is full) continues in a task: a broadcast costs one
        send per subscriber, like a plain loop, without a wake-up per subscriber.
        """
        if self.closed:
            return
        if not self._busy:
            if self._fast is not None and self._fast(event):
                # Fastlane: the shared frame went straight to the transport.
                return
            sending = self._send(event)
            if isinstance(sending, Coroutine):
                try:
                    waiting = sending.send(None)
                except StopIteration:
                    return
                except Exception:
                    self.abort()  # the client is gone; the receive loop reports how
                    return
                sending = Resume(sending, waiting)
            # The send has to wait (or is another server's awaitable): finish it in a task.
            self._busy = True
            self._drainer = asyncio.get_running_loop().create_task(self._finish(sending))
            return
        queue = self._queue
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
                owner = self._owner
                self.abort()
                if owner is not None:
                    owner.evict()
                return
        queue.append(event)
        self._bytes += size

    async def _finish(self, sending: Awaitable[None] | None) -> None:
        """Complete the send in flight, then drain what was queued meanwhile; then end."""
        try:
            if sending is not None:
                await sending
            queue = self._queue
            while queue and not self.closed:
                event = queue.popleft()
                if self._max_bytes is not None:
                    self._bytes -= event_size(event)
                await self._send(event)
        except Exception:
            # The client is gone; the connection's receive loop reports how it ended.
            self.abort()
        finally:
            self._busy = False
            if self._drainer is asyncio.current_task():
                self._drainer = None

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued was handed to the server; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._busy and self._drainer is None and not self.closed:
            # A direct send (a handler's own) is in flight, and what is queued waits for it:
            # its end starts the drainer. (Closed: an aborted drainer may not have run its
            # end yet, and nothing would wake this.)
            sent = self._sent
            if sent is None:
                sent = self._sent = loop.create_future()
            await asyncio.wait({sent}, timeout=timeout)
        drainer = self._drainer
        if drainer is not None and not drainer.done():
            await asyncio.wait({drainer}, timeout=max(0.0, deadline - loop.time()))
        return not self._queue and not self._busy

    def abort(self) -> None:
        """Stop sending: drop what is queued and cancel the send in flight."""
        self.closed = True
        # Nothing overflows once closed: let go of the socket.
        self._owner = None
        if self._queue:
            self._queue.clear()
        self._bytes = 0
        drainer = self._drainer
        if drainer is not None and drainer is not asyncio.current_task():
            drainer.cancel()
        self._drainer = None
