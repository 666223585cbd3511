"""A connection task cancelled by its server leaves with 1001 "server shutting down".

uvicorn closes sockets (1012) before it would cancel anything, so its shutdown never takes
this path; servers that cancel the application's task instead (hypercorn and daphne at
shutdown, a test harness's cancel scope) do. The app is driven here as such a server
drives it: plain ASGI calls on one event loop, then ``task.cancel()``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.types import Message

from support.asgi import AsgiServer, lifespan
from wsroute import Channel, WebSocketStatus, WsRouter
from wsroute.multiplex.codec import encode_subscribe


def build(leaves: list[tuple[str, int, str]]) -> FastAPI:
    ws = WsRouter()

    @ws.message("/rooms/{room}")
    async def said(data: str, channel: Channel) -> None:
        await channel.broadcast(data)

    @ws.leave("/rooms/{room}")
    async def left(status: WebSocketStatus, channel: Channel) -> None:
        leaves.append((channel.topic, status.code, status.reason))

    app = FastAPI()
    ws.install(app)
    return app


def accepted(message: Message) -> bool:
    return message["type"] == "websocket.accept"


async def cancel(server: AsgiServer) -> None:
    server.task.cancel()
    # The server's own cancellation comes back to it as is: it recognises it by identity.
    with pytest.raises(asyncio.CancelledError):
        await server.task


async def test_a_cancelled_dedicated_connection_leaves_with_1001() -> None:
    leaves: list[tuple[str, int, str]] = []
    app = build(leaves)
    async with lifespan(app):
        server = AsgiServer(app, "/rooms/a")
        await server.wait_for(accepted)
        await cancel(server)
    assert leaves == [("/rooms/a", 1001, "server shutting down")]


async def test_a_cancelled_multiplexed_socket_leaves_every_topic_with_1001() -> None:
    leaves: list[tuple[str, int, str]] = []
    app = build(leaves)
    async with lifespan(app):
        server = AsgiServer(app, "/rooms/a", subprotocols=("rocket-multiplex",))
        await server.wait_for(accepted)
        server.inbox.put_nowait({"type": "websocket.receive", "text": encode_subscribe("/rooms/b")})

        def subscribed(message: Message) -> bool:
            text: Any = message.get("text")
            return isinstance(text, str) and text.endswith("OK·SUBSCRIBE·/rooms/b")

        await server.wait_for(subscribed)
        await cancel(server)
    assert sorted(leaves) == [
        ("/rooms/a", 1001, "server shutting down"),
        ("/rooms/b", 1001, "server shutting down"),
    ]


class StuckClient(AsgiServer):
    """A server whose sends after the accept never complete: its client stopped reading."""

    async def _send(self, message: Message) -> None:
        await super()._send(message)
        if message["type"] != "websocket.accept":
            await asyncio.Event().wait()


async def test_an_eviction_by_the_connections_own_broadcast_ends_it_with_1008() -> None:
    """A handler whose own broadcasts overflow its socket's queue evicts that socket from
    inside its task, so the cancellation waits for the task's next await. A handler that
    returns first must not let it escape to the server: the connection ends with 1008 like
    any eviction, and the server's task returns."""
    leaves: list[tuple[str, int, str]] = []
    ws = WsRouter(max_queue=2)

    @ws.message("/flood")
    async def flood(data: str, channel: Channel) -> None:
        for n in range(4):  # the first send blocks; two queue; the fourth overflows
            await channel.broadcast(str(n))

    @ws.leave("/flood")
    async def left(status: WebSocketStatus, channel: Channel) -> None:
        leaves.append((channel.topic, status.code, status.reason))

    app = FastAPI()
    ws.install(app)
    async with lifespan(app):
        server = StuckClient(app, "/flood")
        await server.wait_for(accepted)
        server.inbox.put_nowait({"type": "websocket.receive", "text": "go"})
        await asyncio.wait_for(server.task, 5)  # returns: no CancelledError
    assert leaves == [("/flood", 1008, "slow consumer")]
