"""An app driven in-process by plain ASGI events, as a server drives it: no sockets, one loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.types import Message


def websocket_scope(
    path: str, subprotocols: tuple[str, ...] = (), query_string: bytes = b""
) -> dict[str, Any]:
    """The scope of a WebSocket handshake to `path` on 127.0.0.1:8000 (no Origin header)."""
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "headers": [(b"host", b"127.0.0.1:8000")],
        "subprotocols": list(subprotocols),
        "extensions": {},
        "state": {},
    }


class AsgiServer:
    """One WebSocket connection to `app`, spoken as raw ASGI events: put client events in
    `inbox`, read what the app sent in `sent`."""

    def __init__(
        self, app: Any, path: str, subprotocols: tuple[str, ...] = (), query_string: bytes = b""
    ) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.sent: list[Message] = []
        self._changed = asyncio.Event()
        self.inbox.put_nowait({"type": "websocket.connect"})
        scope = websocket_scope(path, subprotocols, query_string)
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

    async def wait_sent(self, count: int, timeout: float = 5.0) -> None:
        """Wait until the app has sent `count` events in all."""
        async with asyncio.timeout(timeout):
            while len(self.sent) < count:
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """The app's startup before the block and its shutdown after (the broker starts and
    stops), sent through the app as ASGI lifespan events, as a server sends them."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    replies: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    running = asyncio.ensure_future(app(scope, inbox.get, replies.put))

    async def step(event: str) -> None:
        await inbox.put({"type": f"lifespan.{event}"})
        async with asyncio.timeout(10):
            reply = await replies.get()
        if reply["type"] != f"lifespan.{event}.complete":
            await asyncio.gather(running, return_exceptions=True)
            raise RuntimeError(f"lifespan {event} failed: {reply.get('message')}")

    await step("startup")
    try:
        yield
    finally:
        await step("shutdown")
        await running
