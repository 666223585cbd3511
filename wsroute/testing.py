"""A testing kit for wsroute apps: a real server, a client, polling, and multiplexed clients.

```python
async with serve(app) as url, connect(f"ws://{url}/echo") as ws:
    await ws.send("hi")
    assert await ws.recv() == "hi"
```

* `serve` runs the app under uvicorn on a free port of 127.0.0.1 in a thread of its own;
* `connect` opens a `websockets` client (`Client`) with bounded receives and `expect_close`;
* `eventually` polls for what the server does after the client has gone (a `leave`);
* `MultiplexClient` speaks ``rocket-multiplex`` over a real socket, `MultiplexTestSession`
  (from `multiplex_testclient`) over Starlette's in-process `TestClient`.

The real-socket helpers need the `websockets` package (``pip install 'wsroute[test]'``); the
pytest plugin (`wsroute.pytest_plugin`, registered on install) adds fixtures over `serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

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

__all__ = [
    "FASTLANE",
    "WS_IMPLEMENTATIONS",
    "Client",
    "MultiplexClient",
    "MultiplexTestSession",
    "connect",
    "eventually",
    "multiplex_testclient",
    "serve",
]

FASTLANE = "wsroute.fastlane:FastlaneProtocol"
"""The `ws` value of `serve` for wsroute's fastlane protocol."""

WS_IMPLEMENTATIONS = ("websockets-sansio", "wsproto", FASTLANE)
"""Every WebSocket implementation `serve` accepts, to parametrise tests over."""

HOST = "127.0.0.1"

# Base URLs of the servers `serve` is running now, innermost last: `connect("/path")` uses it.
_running: list[str] = []


# --- serve ----------------------------------------------------------------------------------


class _LifespanErrors:
    """The app, recording what its lifespan raised: uvicorn only logs it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.error: BaseException | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except BaseException as error:
            self.error = error
            raise


@contextlib.asynccontextmanager
async def serve(
    app: Any,
    *,
    ws: str = "websockets-sansio",
    lifespan: bool = True,
    startup_timeout: float = 10.0,
    shutdown_timeout: float = 15.0,
    **options: Any,
) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free port of 127.0.0.1; yields ``"127.0.0.1:PORT"``.

    uvicorn runs in a thread with its own event loop, so the test's loop stays free for its
    clients. `ws` is uvicorn's WebSocket implementation: ``"websockets-sansio"``,
    ``"wsproto"`` or `FASTLANE`; `options` go to `uvicorn.Config`.

    An exception of the app's lifespan startup is re-raised here; any other failure to start
    within `startup_timeout` seconds raises RuntimeError. On exit uvicorn shuts down
    gracefully: open connections are closed with 1012 and every `leave` handler has run
    when the block ends (TimeoutError after `shutdown_timeout` seconds).
    """
    import uvicorn

    wrapped = _LifespanErrors(app)
    options.setdefault("log_level", "warning")
    port = options.pop("port", 0)
    mode: Literal["on", "off"] = "on" if lifespan else "off"
    config = uvicorn.Config(wrapped, host=HOST, port=port, ws=ws, lifespan=mode, **options)
    server = uvicorn.Server(config)
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as error:  # uvicorn exits with SystemExit when it cannot bind
            crashed.append(error)

    thread = threading.Thread(target=run, name="wsroute-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            if wrapped.error is not None:
                raise wrapped.error
            cause = crashed[0] if crashed else None
            raise RuntimeError("uvicorn did not start (its log says why)") from cause
        if time.monotonic() > deadline:
            await _stop(server, thread, 5.0)
            raise RuntimeError(f"uvicorn did not start within {startup_timeout}s")
        await asyncio.sleep(0.01)
    port = int(server.servers[0].sockets[0].getsockname()[1])
    base = f"{HOST}:{port}"
    _running.append(base)
    try:
        yield base
    except BaseException:
        _running.remove(base)
        # The test has already failed: stop quietly, its error is the one to see.
        with contextlib.suppress(TimeoutError):
            await _stop(server, thread, shutdown_timeout)
        raise
    _running.remove(base)
    await _stop(server, thread, shutdown_timeout)


async def _stop(server: Any, thread: threading.Thread, timeout: float) -> None:
    """Ask uvicorn to exit and wait for its thread; force it after `timeout` seconds."""
    server.should_exit = True
    # Joined in a worker thread: the test's loop keeps serving its clients meanwhile.
    await asyncio.to_thread(thread.join, timeout)
    if thread.is_alive():
        # Handlers that never finish: cancel them rather than leave a thread behind.
        server.force_exit = True
        await asyncio.to_thread(thread.join, 5.0)
        raise TimeoutError(f"uvicorn did not shut down within {timeout}s (handlers still running)")


# --- connect --------------------------------------------------------------------------------


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

    def __init__(self, websocket: Any, url: str, timeout: float) -> None:
        self.websocket = websocket
        self.url = url
        self.timeout = timeout

    @property
    def subprotocol(self) -> str | None:
        """The sub-protocol the server accepted, if any."""
        return self.websocket.subprotocol  # type: ignore[no-any-return]

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
        await websocket.close()


async def eventually(
    predicate: Callable[[], object] | Callable[[], Awaitable[object]],
    timeout: float = 5.0,
    interval: float = 0.01,
    what: str = "the condition",
) -> Any:
    """Poll `predicate` (sync or async) until it returns something true, and return that.

    AssertionError naming `what` if it is still false after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


# --- multiplexed clients --------------------------------------------------------------------


def _payload(frame: ServerFrame, topic: str) -> str | bytes | None:
    """The payload of `frame` if it is data for `topic`."""
    if isinstance(frame, DataFrame) and frame.topic == topic:
        return frame.text if frame.text is not None else frame.data or b""
    return None


def _is_reply(frame: ServerFrame, action: str, topic: str) -> bool:
    return isinstance(frame, Ok | Err) and frame.action == action and frame.params[:1] == (topic,)


def _parse(raw: str | bytes) -> ServerFrame:
    if isinstance(raw, str):
        return parse_server_frame(raw, None)
    return parse_server_frame(None, bytes(raw))


def _encode(topic: str, payload: str | bytes) -> str | bytes:
    return encode_text(topic, payload) if isinstance(payload, str) else encode_binary(topic, payload)


class _Frames:
    """Frames received while waiting for another one, kept for later calls (no I/O here)."""

    def __init__(self) -> None:
        self.buffer: deque[ServerFrame] = deque()

    def pop(self) -> ServerFrame | None:
        return self.buffer.popleft() if self.buffer else None

    def pop_data(self, topic: str) -> str | bytes | None:
        for index, frame in enumerate(self.buffer):
            payload = _payload(frame, topic)
            if payload is not None:
                del self.buffer[index]
                return payload
        return None

    def keep(self, frame: ServerFrame) -> None:
        self.buffer.append(frame)


def _first_topic(url: str) -> str:
    rest = url.split("://", 1)[1] if "://" in url else url
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else "/"


class MultiplexClient:
    """A ``rocket-multiplex`` client over a real socket; frames come back parsed by the codec."""

    def __init__(self, websocket: Any, first_topic: str) -> None:
        self.websocket = websocket
        self.first_topic = first_topic
        self._frames = _Frames()

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, **options: Any) -> AsyncIterator[MultiplexClient]:
        """Open a socket to `url` (its path and query are the first topic).

        `url` is written as for `connect`; `options` go to `websockets.connect`.
        """
        import websockets
        from websockets.typing import Subprotocol

        target = _ws_url(url)
        options.setdefault("proxy", None)
        options.setdefault("subprotocols", [Subprotocol(SUBPROTOCOL)])
        async with websockets.connect(target, **options) as websocket:
            yield cls(websocket, _first_topic(target))

    async def send_raw(self, frame: str | bytes) -> None:
        """Send a frame exactly as given (to test what the server does with bad input)."""
        await self.websocket.send(frame)

    async def send(self, topic: str, payload: str | bytes) -> None:
        """Send `payload` to `topic` (text or binary frame, like the payload)."""
        await self.websocket.send(_encode(topic, payload))

    async def _next(self, deadline: float) -> ServerFrame:
        remaining = max(deadline - time.monotonic(), 0.0)
        return _parse(await asyncio.wait_for(self.websocket.recv(), remaining))

    async def recv(self, timeout: float = 5.0) -> ServerFrame:
        """The next frame from the server, parsed."""
        frame = self._frames.pop()
        return frame if frame is not None else await self._next(time.monotonic() + timeout)

    async def _reply_to(self, action: str, topic: str, timeout: float) -> Ok | Err:
        deadline = time.monotonic() + timeout
        while True:
            frame = await self._next(deadline)
            if _is_reply(frame, action, topic):
                assert isinstance(frame, Ok | Err)
                return frame
            self._frames.keep(frame)

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
        payload = self._frames.pop_data(topic)
        deadline = time.monotonic() + timeout
        while payload is None:
            frame = await self._next(deadline)
            payload = _payload(frame, topic)
            if payload is None:
                self._frames.keep(frame)
        return payload


class MultiplexTestSession:
    """`MultiplexClient`'s calls, synchronous, over a Starlette `TestClient` WebSocket session.

    No socket and no thread of yours: for handler logic. A close from the server raises
    `starlette.websockets.WebSocketDisconnect`; a receive that waits more than `timeout`
    seconds raises TimeoutError.
    """

    def __init__(self, session: Any, first_topic: str) -> None:
        self.session = session
        self.first_topic = first_topic
        self._frames = _Frames()

    def send_raw(self, frame: str | bytes) -> None:
        """Send a frame exactly as given (to test what the server does with bad input)."""
        if isinstance(frame, str):
            self.session.send_text(frame)
        else:
            self.session.send_bytes(frame)

    def send(self, topic: str, payload: str | bytes) -> None:
        """Send `payload` to `topic` (text or binary frame, like the payload)."""
        self.send_raw(_encode(topic, payload))

    def _receive(self, timeout: float) -> Any:
        """The session's next ASGI message, waiting at most `timeout` seconds.

        Starlette's own `receive()` waits forever; its message stream is private, and was a
        `queue.Queue` in older versions, so both are handled.
        """
        session = self.session
        stream = getattr(session, "_send_rx", None)
        if stream is not None:
            import anyio

            async def bounded() -> Any:
                with anyio.fail_after(timeout):
                    return await stream.receive()

            return session.portal.call(bounded)
        queue = getattr(session, "_send_queue", None)
        if queue is not None:
            import queue as queue_module

            try:
                message = queue.get(timeout=timeout)
            except queue_module.Empty:
                raise TimeoutError from None
            if isinstance(message, BaseException):
                raise message
            return message
        return session.receive()

    def _next(self, deadline: float, timeout: float) -> ServerFrame:
        from starlette.websockets import WebSocketDisconnect

        remaining = max(deadline - time.monotonic(), 0.0)
        try:
            message = self._receive(remaining)
        except TimeoutError:
            raise TimeoutError(f"no frame on the socket of {self.first_topic} within {timeout}s") from None
        if message["type"] == "websocket.close":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason") or "")
        text = message.get("text")
        return _parse(text if text is not None else message.get("bytes") or b"")

    def recv(self, timeout: float = 5.0) -> ServerFrame:
        """The next frame from the server, parsed."""
        frame = self._frames.pop()
        return frame if frame is not None else self._next(time.monotonic() + timeout, timeout)

    def _reply_to(self, action: str, topic: str, timeout: float) -> Ok | Err:
        deadline = time.monotonic() + timeout
        while True:
            frame = self._next(deadline, timeout)
            if _is_reply(frame, action, topic):
                assert isinstance(frame, Ok | Err)
                return frame
            self._frames.keep(frame)

    def subscribe(self, topic: str, timeout: float = 5.0) -> Ok | Err:
        """SUBSCRIBE and wait for its ``OK`` or ``ERR`` (other frames stay queued for `recv`)."""
        self.send_raw(encode_subscribe(topic))
        return self._reply_to("SUBSCRIBE", topic, timeout)

    def unsubscribe(
        self, topic: str, code: int | None = None, reason: str | None = None, timeout: float = 5.0
    ) -> Ok | Err:
        """UNSUBSCRIBE and wait for its ``OK`` or ``ERR``."""
        self.send_raw(encode_unsubscribe(topic, code, reason))
        return self._reply_to("UNSUBSCRIBE", topic, timeout)

    def recv_data(self, topic: str, timeout: float = 5.0) -> str | bytes:
        """The payload of the next data frame for `topic` (other frames stay queued)."""
        payload = self._frames.pop_data(topic)
        deadline = time.monotonic() + timeout
        while payload is None:
            frame = self._next(deadline, timeout)
            payload = _payload(frame, topic)
            if payload is None:
                self._frames.keep(frame)
        return payload


@contextlib.contextmanager
def multiplex_testclient(client: Any, path: str, **options: Any) -> Iterator[MultiplexTestSession]:
    """``with multiplex_testclient(TestClient(app), "/rooms/a") as mux``: a multiplexed socket.

    `path` (with its query) is the first topic; `options` go to `client.websocket_connect`.
    """
    options.setdefault("subprotocols", [SUBPROTOCOL])
    with client.websocket_connect(path, **options) as session:
        yield MultiplexTestSession(session, path)
