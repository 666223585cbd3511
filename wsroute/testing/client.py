"""`connect` and `Client`: a `websockets` client with bounded receives; `eventually`."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from wsroute.testing.server import _running

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

T = TypeVar("T")


def _ws_url(url: str) -> str:
    """``ws://`` URL for what a test writes: a full URL, ``"host:port/path"`` or ``"/path"``."""
    for scheme, replacement in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(scheme):
            return replacement + url[len(scheme) :]
    if url.startswith(("ws://", "wss://")):
        return url
    if url.startswith("/"):
        if not _running:
            raise ValueError(f"{url!r} is relative, but no `serve` block is running")
        return f"ws://{_running[-1]}{url}"
    return f"ws://{url}"


class Client:
    """A `websockets` client connection with bounded receives; `websocket` is the raw one."""

    def __init__(self, websocket: ClientConnection, url: str, timeout: float) -> None:
        self.websocket = websocket
        self.url = url
        self.timeout = timeout

    @property
    def subprotocol(self) -> str | None:
        """The sub-protocol the server accepted, if any."""
        return self.websocket.subprotocol

    async def send(self, message: str | bytes) -> None:
        """Send a text (`str`) or binary (`bytes`) message."""
        await self.websocket.send(message)

    async def recv(self, timeout: float | None = None) -> str | bytes:
        """The next message; TimeoutError naming the URL if none comes within `timeout` seconds.

        A close from the server raises `websockets.exceptions.ConnectionClosed`.
        """
        timeout = self.timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(self.websocket.recv(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no message from {self.url} within {timeout}s") from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection from the client side and wait for the server's answer."""
        await self.websocket.close(code, reason)

    async def expect_close(
        self,
        code: int | None = None,
        reason: str | None = None,
        *,
        timeout: float | None = None,
        ignore_messages: bool = False,
    ) -> tuple[int, str]:
        """Wait for the server's close frame; its ``(code, reason)``.

        AssertionError if the code or reason differ from the given ones, if a message comes
        first (unless `ignore_messages`) or if the connection ends without a close frame;
        TimeoutError naming the URL if the server has not closed within `timeout` seconds.
        """
        from websockets.exceptions import ConnectionClosed

        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(self.websocket.recv(), remaining)
                if not ignore_messages:
                    raise AssertionError(f"expected {self.url} to close, got the message {message!r}")
        except TimeoutError:
            raise TimeoutError(f"{self.url} did not close within {timeout}s") from None
        except ConnectionClosed as closed:
            frame = closed.rcvd
        if frame is None:
            raise AssertionError(f"the connection to {self.url} ended without a close frame from the server")
        if code is not None and frame.code != code:
            raise AssertionError(f"{self.url} closed with {frame.code} {frame.reason!r}, expected {code}")
        if reason is not None and frame.reason != reason:
            raise AssertionError(f"{self.url} closed with the reason {frame.reason!r}, expected {reason!r}")
        return frame.code, frame.reason


@contextlib.asynccontextmanager
async def connect(
    url: str,
    *,
    subprotocols: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    **options: Any,
) -> AsyncIterator[Client]:
    """``async with connect(url) as ws``: a `Client` to `url`, closed when the block ends.

    `url` is a ``ws://`` (or ``http://``) URL, ``f"{url}/path"`` with the base URL `serve`
    yields, or a path (``"/echo"``) on the innermost running `serve`. The environment's
    proxy settings are ignored. `timeout` bounds the handshake, each `recv` and the close;
    `options` go to `websockets.connect`. A refused handshake raises
    `websockets.exceptions.InvalidStatus` (``.response`` has the status, headers and body).
    """
    import websockets
    from websockets.typing import Subprotocol

    target = _ws_url(url)
    options.setdefault("proxy", None)
    options.setdefault("close_timeout", timeout)
    if subprotocols is not None:
        options["subprotocols"] = [Subprotocol(name) for name in subprotocols]
    if headers is not None:
        options["additional_headers"] = dict(headers)
    try:
        websocket = await websockets.connect(target, open_timeout=timeout, **options)
    except TimeoutError:
        raise TimeoutError(f"could not open {target} within {timeout}s") from None
    try:
        yield Client(websocket, target, timeout)
    finally:
        await _close_unread(websocket)


async def _close_unread(websocket: Any) -> None:
    """Close, discarding the messages the test did not read. websockets stops reading the
    socket once its queue of unread messages is full, so the server's close frame behind
    them would never be read and the close would wait out its `close_timeout` (10 s by
    default; python-websockets/websockets#1555 says that is by design)."""
    from websockets.exceptions import ConnectionClosed

    async def discard() -> None:
        with contextlib.suppress(ConnectionClosed, RuntimeError):  # RuntimeError: a recv in progress
            async for _ in websocket:
                pass

    draining = asyncio.get_running_loop().create_task(discard())
    try:
        await websocket.close()
    finally:
        draining.cancel()
        await asyncio.gather(draining, return_exceptions=True)


@overload
async def eventually(
    predicate: Callable[[], Awaitable[T]], timeout: float = 5.0, interval: float = 0.01, what: str = ...
) -> T: ...
@overload
async def eventually(
    predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.01, what: str = ...
) -> T: ...
async def eventually(
    predicate: Callable[[], object],
    timeout: float = 5.0,
    interval: float = 0.01,
    what: str = "the condition",
) -> object:
    """Poll `predicate` (sync or async) until it returns something true, and return that.

    AssertionError naming `what` if it is still false after `timeout` seconds; an async
    predicate that has not returned by then is cancelled and counts as still false.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            bound = asyncio.timeout(max(deadline - time.monotonic(), 0.0))
            try:
                async with bound:
                    result = await result
            except TimeoutError:
                if not bound.expired():
                    raise  # the predicate's own timeout, not this poll's
                result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
