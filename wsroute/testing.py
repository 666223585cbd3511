"""Helpers for testing wsroute apps: a `rocket-multiplex` client for Python tests.

Needs the `websockets` package (installed with ``pip install 'wsroute[test]'``):

```python
async with MultiplexClient.connect("ws://127.0.0.1:8000/rooms/a") as mux:
    assert isinstance(await mux.subscribe("/rooms/b"), Ok)
    await mux.send("/rooms/b", "hello")
    assert await mux.recv_data("/rooms/b") == "hello"
```
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from wsroute.multiplex.codec import (
    SUBPROTOCOL,
    DataFrame,
    Err,
    Ok,
    ServerFrame,
    encode_binary,
    encode_subscribe,
    encode_text,
    encode_unsubscribe,
    parse_server_frame,
)

__all__ = ["MultiplexClient"]


class MultiplexClient:
    """A client for one multiplexed socket; frames come back parsed by the codec."""

    def __init__(self, websocket: Any, first_topic: str) -> None:
        self.websocket = websocket
        self.first_topic = first_topic
        self._buffer: deque[ServerFrame] = deque()

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, **options: Any) -> AsyncIterator[MultiplexClient]:
        """Open a socket to `url` (its path and query are the first topic)."""
        import websockets
        from websockets.typing import Subprotocol

        options.setdefault("proxy", None)
        options.setdefault("subprotocols", [Subprotocol(SUBPROTOCOL)])
        async with websockets.connect(url, **options) as websocket:
            rest = url.split("://", 1)[1]
            slash = rest.find("/")
            yield cls(websocket, rest[slash:] if slash >= 0 else "/")

    async def send_raw(self, frame: str | bytes) -> None:
        """Send a frame exactly as given (to test what the server does with bad input)."""
        await self.websocket.send(frame)

    async def send(self, topic: str, payload: str | bytes) -> None:
        """Send `payload` to `topic` (text or binary frame, like the payload)."""
        if isinstance(payload, str):
            await self.websocket.send(encode_text(topic, payload))
        else:
            await self.websocket.send(encode_binary(topic, payload))

    async def _next(self, timeout: float) -> ServerFrame:
        raw = await asyncio.wait_for(self.websocket.recv(), timeout)
        if isinstance(raw, str):
            return parse_server_frame(raw, None)
        return parse_server_frame(None, bytes(raw))

    async def recv(self, timeout: float = 5.0) -> ServerFrame:
        """The next frame from the server, parsed."""
        if self._buffer:
            return self._buffer.popleft()
        return await self._next(timeout)

    async def _reply_to(self, action: str, topic: str, timeout: float) -> Ok | Err:
        skipped: list[ServerFrame] = []
        try:
            while True:
                frame = await self._next(timeout)
                if isinstance(frame, Ok | Err) and frame.action == action and frame.params[:1] == (topic,):
                    return frame
                skipped.append(frame)
        finally:
            self._buffer.extend(skipped)

    async def subscribe(self, topic: str, timeout: float = 5.0) -> Ok | Err:
        """SUBSCRIBE and wait for its ``OK`` or ``ERR`` (other frames stay queued for `recv`)."""
        await self.websocket.send(encode_subscribe(topic))
        return await self._reply_to("SUBSCRIBE", topic, timeout)

    async def unsubscribe(
        self, topic: str, code: int | None = None, reason: str | None = None, timeout: float = 5.0
    ) -> Ok | Err:
        """UNSUBSCRIBE and wait for its ``OK`` or ``ERR``."""
        await self.websocket.send(encode_unsubscribe(topic, code, reason))
        return await self._reply_to("UNSUBSCRIBE", topic, timeout)

    async def recv_data(self, topic: str, timeout: float = 5.0) -> str | bytes:
        """The payload of the next data frame for `topic` (other frames stay queued)."""
        for index, frame in enumerate(self._buffer):
            if isinstance(frame, DataFrame) and frame.topic == topic:
                del self._buffer[index]
                return frame.text if frame.text is not None else frame.data or b""
        skipped: list[ServerFrame] = []
        try:
            while True:
                frame = await self._next(timeout)
                if isinstance(frame, DataFrame) and frame.topic == topic:
                    return frame.text if frame.text is not None else frame.data or b""
                skipped.append(frame)
        finally:
            self._buffer.extend(skipped)
