"""Unit tests of the outgoing queue: order, direct sends, and each slow-consumer policy."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from wsroute import ChannelClosed
from wsroute.outbox import Outbox, SlowConsumerPolicy


class StuckClient:
    """An ASGI send that blocks until released, like a client that stopped reading."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.open = asyncio.Event()
        self.open.set()

    async def send(self, event: Message) -> None:
        await self.open.wait()
        self.sent.append(event)


def text(n: int) -> Message:
    return {"type": "websocket.send", "text": str(n)}


class Socket:
    """The outbox's owner: counts its evictions."""

    def __init__(self) -> None:
        self.evictions: list[int] = []

    def evict(self) -> None:
        self.evictions.append(1)


def make(client: StuckClient, policy: SlowConsumerPolicy, limit: int = 3) -> tuple[Outbox, list[int]]:
    owner = Socket()
    outbox = Outbox(client.send, max_messages=limit, max_bytes=None, policy=policy, owner=owner)
    return outbox, owner.evictions


async def test_order_is_kept_between_direct_sends_and_pushes() -> None:
    client = StuckClient()
    outbox, _ = make(client, "disconnect", limit=100)
    await outbox.send(text(0))  # idle: sent directly
    client.open.clear()
    outbox.push(text(1))
    outbox.push(text(2))
    await asyncio.sleep(0)
    await outbox.send(text(3))  # queued behind 1 and 2, not sent ahead of them
    client.open.set()
    assert await outbox.drain(1.0)
    assert [e["text"] for e in client.sent] == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    ("policy", "kept", "overflowed", "closed"),
    [
        ("drop_oldest", ["0", "3", "4", "5"], 0, False),
        ("drop_newest", ["0", "1", "2", "3"], 0, False),
        ("disconnect", [], 1, True),  # the stalled send is abandoned too
    ],
)
async def test_slow_consumer_policies(
    policy: SlowConsumerPolicy, kept: list[str], overflowed: int, closed: bool
) -> None:
    client = StuckClient()
    client.open.clear()
    outbox, overflows = make(client, policy)
    for n in range(6):
        outbox.push(text(n))
        await asyncio.sleep(0)  # the writer takes "0" and blocks on it
    assert len(outbox) <= 3
    client.open.set()
    await outbox.drain(1.0)
    await asyncio.sleep(0.01)
    assert [e["text"] for e in client.sent] == kept
    assert len(overflows) == overflowed
    assert outbox.closed is closed
    if closed:
        with pytest.raises(ChannelClosed):
            await outbox.send(text(9))


async def test_byte_bound() -> None:
    client = StuckClient()
    client.open.clear()
    outbox = Outbox(client.send, max_messages=100, max_bytes=10, policy="drop_newest", owner=Socket())
    outbox.push({"type": "websocket.send", "text": "x" * 4})  # taken by the writer
    await asyncio.sleep(0)
    for _ in range(5):
        outbox.push({"type": "websocket.send", "text": "y" * 4})
    assert len(outbox) == 2 and outbox.dropped == 3


async def test_send_on_a_broken_connection_raises_channel_closed() -> None:
    async def broken(event: Message) -> None:
        raise OSError("connection reset")

    outbox = Outbox(broken, max_messages=4, max_bytes=None, policy="disconnect", owner=Socket())
    with pytest.raises(ChannelClosed, match="closed"):
        await outbox.send(text(1))
    assert outbox.closed


async def test_push_to_an_idle_socket_sends_at_once_without_a_task() -> None:
    client = StuckClient()
    outbox, _ = make(client, "disconnect")
    tasks_before = len(asyncio.all_tasks())
    for n in range(3):
        outbox.push(text(n))
        # Delivered synchronously: no await happened between push and this check.
        assert [e["text"] for e in client.sent] == [str(i) for i in range(n + 1)]
    assert len(asyncio.all_tasks()) == tasks_before


async def test_a_send_held_by_backpressure_finishes_in_a_task_then_drains_in_order() -> None:
    client = StuckClient()
    client.open.clear()
    outbox, _ = make(client, "disconnect", limit=10)
    for n in range(4):
        outbox.push(text(n))
    assert client.sent == [] and len(outbox) == 3
    client.open.set()
    assert await outbox.drain(1.0)
    assert [e["text"] for e in client.sent] == ["0", "1", "2", "3"]
    outbox.push(text(4))  # idle again: straight through
    assert client.sent[-1]["text"] == "4"


async def test_abort_cancels_the_send_in_flight() -> None:
    client = StuckClient()
    client.open.clear()
    outbox, _ = make(client, "disconnect")
    outbox.push(text(0))
    await asyncio.sleep(0)
    outbox.abort()
    await asyncio.sleep(0)
    client.open.set()
    await asyncio.sleep(0.01)
    assert client.sent == [] and outbox.closed
    assert all(task.done() for task in asyncio.all_tasks() if task is not asyncio.current_task())


async def test_a_cancelled_direct_send_still_drains_what_queued_behind_it_first() -> None:
    """A handler that bounds its own send (``wait_for``) on a client that stopped reading:
    the broadcasts queued behind that send go out before anything sent later."""
    client = StuckClient()
    outbox, _ = make(client, "disconnect", limit=100)
    client.open.clear()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            sending = outbox.send(text(0))
            outbox_task = asyncio.ensure_future(sending)
            await asyncio.sleep(0)
            outbox.push(text(1))
            outbox.push(text(2))
            await outbox_task
    outbox.push(text(3))
    client.open.set()
    assert await outbox.drain(1.0)
    assert [e["text"] for e in client.sent] == ["1", "2", "3"]


async def test_drain_waits_for_a_direct_send_and_what_queued_behind_it() -> None:
    """A server-side close flushes what the client has not read before its close frame, also
    when the send in flight is a handler's own rather than a broadcast."""
    client = StuckClient()
    outbox, _ = make(client, "disconnect", limit=100)
    client.open.clear()
    handler = asyncio.create_task(outbox.send(text(0)))
    await asyncio.sleep(0)
    outbox.push(text(1))
    outbox.push(text(2))
    draining = asyncio.create_task(outbox.drain(2.0))
    await asyncio.sleep(0.05)
    assert not draining.done()
    client.open.set()
    assert await draining
    await handler
    assert [e["text"] for e in client.sent] == ["0", "1", "2"]
    client.open.clear()
    stuck = asyncio.create_task(outbox.send(text(3)))
    await asyncio.sleep(0)
    assert not await outbox.drain(0.05)  # bounded by its timeout
    client.open.set()
    await stuck
