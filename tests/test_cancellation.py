"""A connection task cancelled by its server leaves with 1001 "server shutting down".

uvicorn closes sockets (1012) before it would cancel anything, so its shutdown never takes
this path; servers that cancel the application's task instead (hypercorn and daphne at
shutdown, a test harness's cancel scope) do. The app is driven here as such a server
drives it: plain ASGI calls on one event loop, then ``task.cancel()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.types import Message

from wsroute import Channel, WebSocketStatus, WsRouter
from wsroute.multiplex.codec import encode_subscribe


class AsgiServer:
    """One WebSocket connection to `app`, spoken as raw ASGI events."""

    def __init__(self, app: FastAPI, path: str, subprotocols: tuple[str, ...] = ()) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.sent: list[Message] = []
        self._changed = asyncio.Event()
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1:8000")],
            "subprotocols": list(subprotocols),
            "extensions": {},
            "state": {},
        }
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.ensure_future(app(scope, self.inbox.get, self._send))

    async def _send(self, message: Message) -> None:
        self.sent.append(message)
        self._changed.set()

    async def wait_for(self, check: Callable[[Message], bool], timeout: float = 5.0) -> Message:
        """The first sent event that passes `check`, waiting up to `timeout` seconds for it."""
        async with asyncio.timeout(timeout):
            while True:
                for message in self.sent:
                    if check(message):
                        return message
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with app.router.lifespan_context(app):
        yield


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
