"""A testing kit for wsroute apps: a real server, a client, polling, and multiplexed clients.

```python
async with serve(app) as url, connect(f"ws://{url}/echo") as ws:
    await ws.send("hi")
    assert await ws.recv() == "hi"
```

* `serve` runs the app under uvicorn on a free port of 127.0.0.1 in a thread of its own
  (`ServerThread` is the same server for sync code);
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
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

from wsroute.history import StreamPosition
from wsroute.multiplex.codec import (
    META,
    OPTIONS_PARAM,
    POSITIONS,
    PRESENCE,
    SINCE,
    SUBPROTOCOL,
    DataFrame,
    Err,
    Ok,
    ServerFrame,
    encode_binary,
    encode_items,
    encode_meta_binary,
    encode_meta_text,
    encode_since,
    encode_subscribe,
    encode_text,
    encode_unsubscribe,
    parse_items,
    parse_server_frame,
    split_meta,
)

__all__ = [
    "FASTLANE",
    "WS_IMPLEMENTATIONS",
    "Client",
    "MultiplexClient",
    "MultiplexTestSession",
    "RequestError",
    "ServerThread",
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


class ServerThread:
    """uvicorn serving `app` on a free port of 127.0.0.1 in a thread: `serve` for sync code.

    ``with ServerThread(app) as url`` starts it, yields ``"127.0.0.1:PORT"`` (also `url`) and
    stops it as `serve` does when the block ends. For a sync fixture or test (a module-scoped
    server, Playwright's sync API), or to `stop` it while clients are still connected (from
    async code: ``await asyncio.to_thread(server.stop)``). The arguments are `serve`'s.
    """

    def __init__(
        self,
        app: Any,
        *,
        ws: str = "websockets-sansio",
        lifespan: bool = True,
        startup_timeout: float = 10.0,
        shutdown_timeout: float = 15.0,
        **options: Any,
    ) -> None:
        import uvicorn

        self._app = _LifespanErrors(app)
        options.setdefault("log_level", "warning")
        port = options.pop("port", 0)
        mode: Literal["on", "off"] = "on" if lifespan else "off"
        config = uvicorn.Config(self._app, host=HOST, port=port, ws=ws, lifespan=mode, **options)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="wsroute-serve", daemon=True)
        self._crashed: list[BaseException] = []
        self._url: str | None = None
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout

    def _run(self) -> None:
        try:
            self._server.run()
        except BaseException as error:  # uvicorn exits with SystemExit when it cannot bind
            self._crashed.append(error)

    @property
    def url(self) -> str:
        """``"127.0.0.1:PORT"``, once started."""
        if self._url is None:
            raise RuntimeError("the server has not started")
        return self._url

    @property
    def port(self) -> int:
        """The port it listens on, once started."""
        return int(self.url.rpartition(":")[2])

    def start(self) -> str:
        """Start uvicorn and wait until it listens; its `url`.

        An exception of the app's lifespan startup is re-raised here; any other failure to
        start within `startup_timeout` seconds raises RuntimeError.
        """
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                if self._app.error is not None:
                    raise self._app.error
                cause = self._crashed[0] if self._crashed else None
                raise RuntimeError("uvicorn did not start (its log says why)") from cause
            if time.monotonic() > deadline:
                with contextlib.suppress(TimeoutError):
                    self._join(5.0)
                raise RuntimeError(f"uvicorn did not start within {self.startup_timeout}s")
            time.sleep(0.01)
        port = int(self._server.servers[0].sockets[0].getsockname()[1])
        self._url = f"{HOST}:{port}"
        _running.append(self._url)
        return self._url

    def stop(self, timeout: float | None = None) -> None:
        """Shut uvicorn down gracefully and wait for it; nothing if it is not running.

        Open connections are closed with 1012 and every `leave` handler has run when it
        returns. After `timeout` seconds (`shutdown_timeout` unless given) the handlers still
        running are cancelled and TimeoutError is raised.
        """
        if self._url in _running:
            _running.remove(self._url)
        if self._thread.is_alive():
            self._join(self.shutdown_timeout if timeout is None else timeout)

    def _join(self, timeout: float) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            # Handlers that never finish: cancel them rather than leave a thread behind.
            self._server.force_exit = True
            self._thread.join(5.0)
            raise TimeoutError(f"uvicorn did not shut down within {timeout}s (handlers still running)")

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        if kind is None:
            self.stop()
            return
        # The block has already failed: stop quietly, its error is the one to see.
        with contextlib.suppress(TimeoutError):
            self.stop()


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
    when the block ends (TimeoutError after `shutdown_timeout` seconds). `ServerThread` is
    the same server for sync code.
    """
    server = ServerThread(
        app,
        ws=ws,
        lifespan=lifespan,
        startup_timeout=startup_timeout,
        shutdown_timeout=shutdown_timeout,
        **options,
    )
    # Started and stopped in a worker thread: the test's loop keeps serving its clients.
    base = await asyncio.to_thread(server.start)
    try:
        yield base
    except BaseException:
        # The test has already failed: stop quietly, its error is the one to see.
        with contextlib.suppress(TimeoutError):
            await asyncio.to_thread(server.stop)
        raise
    await asyncio.to_thread(server.stop)


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


class RequestError(Exception):
    """The server answered a request with an error: `code` and `reason` are what the error
    would have closed the topic with (e.g. 1007 for an invalid payload, 1011 for a bug)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"request failed with {code}: {reason}")
        self.code = code
        self.reason = reason


def _is_reply(frame: ServerFrame, action: str, topic: str) -> bool:
    return isinstance(frame, Ok | Err) and frame.action == action and frame.params[:1] == (topic,)


def _parse(raw: str | bytes) -> ServerFrame:
    if isinstance(raw, str):
        return parse_server_frame(raw, None)
    return parse_server_frame(None, bytes(raw))


def _encode(topic: str, payload: str | bytes) -> str | bytes:
    return encode_text(topic, payload) if isinstance(payload, str) else encode_binary(topic, payload)


class _Frames:
    """A multiplexed client's bookkeeping, shared by the async and the sync client (no I/O
    here): frames received while waiting for another one, kept for later calls; which topics
    the server frames with metadata; request ids."""

    def __init__(self) -> None:
        self.buffer: deque[ServerFrame] = deque()
        self.meta: set[str] = set()
        self.positions: dict[str, StreamPosition] = {}
        self.recovered: dict[str, bool] = {}
        self._next_id = 0

    def pop(self) -> ServerFrame | None:
        return self.buffer.popleft() if self.buffer else None

    def keep(self, frame: ServerFrame) -> None:
        self.buffer.append(frame)

    def subscribed(self, reply: Ok | Err) -> None:
        """Note whether an ``OK`` granted ``meta`` to its topic, and where its positions start."""
        if isinstance(reply, Ok):
            topic, *rest = reply.params
            items = parse_items(rest[0]) if rest else {}
            if META in items:
                self.meta.add(topic)
            else:
                self.meta.discard(topic)
            self.positions.pop(topic, None)
            if "epoch" in items and "offset" in items:
                self.positions[topic] = StreamPosition(items["epoch"], int(items["offset"]))
            if "recovered" in items:
                self.recovered[topic] = items["recovered"] == "true"

    def encode(
        self, topic: str, payload: str | bytes, items: Mapping[str, str | int] | None = None
    ) -> str | bytes:
        if topic not in self.meta:
            return _encode(topic, payload)
        items = items or {}
        if isinstance(payload, str):
            return encode_meta_text(topic, items, payload)
        return encode_meta_binary(topic, items, payload)

    def request(self, topic: str, payload: str | bytes) -> tuple[str, str | bytes]:
        """A new request id and the frame carrying `payload` as that request."""
        if topic not in self.meta:
            raise RuntimeError(f"{topic} takes no requests: subscribe it with meta=True")
        self._next_id += 1
        request_id = str(self._next_id)
        return request_id, self.encode(topic, payload, {"id": request_id})

    def split(self, frame: ServerFrame, topic: str) -> tuple[dict[str, str], str | bytes] | None:
        """The metadata and payload of `frame` if it is data for `topic`."""
        if not isinstance(frame, DataFrame) or frame.topic != topic:
            return None
        if topic not in self.meta:
            return {}, frame.text if frame.text is not None else frame.data or b""
        items, text, data = split_meta(frame.text, frame.data)
        if "offset" in items:
            held = self.positions.get(topic)
            epoch = items.get("epoch") or (held.epoch if held is not None else "")
            self.positions[topic] = StreamPosition(epoch, int(items["offset"]))
        return items, text if text is not None else data or b""

    def data(self, frame: ServerFrame, topic: str) -> str | bytes | None:
        """The payload of `frame` if it is data for `topic` (a reply or presence frame is not)."""
        split = self.split(frame, topic)
        return None if split is None or "reply" in split[0] or "presence" in split[0] else split[1]

    def presence(self, frame: ServerFrame, topic: str) -> tuple[str, dict[str, Any]] | None:
        """``(kind, body)`` of `frame` if it is a presence frame of `topic`."""
        split = self.split(frame, topic)
        if split is None or "presence" not in split[0]:
            return None
        body = split[1]
        return split[0]["presence"], json.loads(body)

    def reply(self, frame: ServerFrame, topic: str, request_id: str) -> str | bytes | None:
        """The payload of `frame` if it is the reply to `request_id`; raises `RequestError`
        for an error reply."""
        split = self.split(frame, topic)
        if split is None or split[0].get("reply") != request_id:
            return None
        items, payload = split
        if "error" in items:
            reason = payload if isinstance(payload, str) else payload.decode()
            raise RequestError(int(items["error"]), reason)
        return payload

    def pop_any_data(self) -> tuple[str, str | bytes] | None:
        for index, frame in enumerate(self.buffer):
            if isinstance(frame, DataFrame):
                payload = self.data(frame, frame.topic)
                if payload is not None:
                    del self.buffer[index]
                    return frame.topic, payload
        return None

    def pop_data(self, topic: str) -> str | bytes | None:
        for index, frame in enumerate(self.buffer):
            payload = self.data(frame, topic)
            if payload is not None:
                del self.buffer[index]
                return payload
        return None


def _options(
    meta: bool, positions: bool, since: StreamPosition | None, presence: bool = False
) -> dict[str, str] | None:
    """A subscription's options: ``meta`` (implied by the others), ``positions``, ``since``,
    ``presence``."""
    if not (meta or positions or presence or since is not None):
        return None
    options = {META: ""}
    if positions or since is not None:
        options[POSITIONS] = ""
    if since is not None:
        options[SINCE] = encode_since(*since)
    if presence:
        options[PRESENCE] = ""
    return options


def _with_options(url: str, options: dict[str, str] | None = None) -> str:
    """`url` with the connect topic's options (default: ``meta``) in its query."""
    field = encode_items(options) if options else META
    return f"{url}{'&' if '?' in url else '?'}{OPTIONS_PARAM}={field}"


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
    async def connect(
        cls,
        url: str,
        *,
        meta: bool = False,
        positions: bool = False,
        since: StreamPosition | None = None,
        presence: bool = False,
        **options: Any,
    ) -> AsyncIterator[MultiplexClient]:
        """Open a socket to `url` (its path and query are the first topic).

        `url` is written as for `connect`; `options` go to `websockets.connect`. With
        `meta`, the first topic asks for per-frame metadata (so it takes `request`s);
        with `positions`, for stream positions (`position`); with `since`, to recover from
        that position (`recovered`); with `presence`, for the member list and its changes
        (`recv_presence`). With any of them the server's ``OK`` is awaited here.
        """
        import websockets
        from websockets.typing import Subprotocol

        target = _ws_url(url)
        options.setdefault("proxy", None)
        options.setdefault("subprotocols", [Subprotocol(SUBPROTOCOL)])
        wanted = _options(meta, positions, since, presence)
        first_url = _with_options(target, wanted) if wanted else target
        websocket = await websockets.connect(first_url, **options)
        try:
            client = cls(websocket, _first_topic(target))
            if wanted:
                client._frames.subscribed(await client._reply_to("SUBSCRIBE", client.first_topic, 5.0))
            yield client
        finally:
            await _close_unread(websocket)

    async def send_raw(self, frame: str | bytes) -> None:
        """Send a frame exactly as given (to test what the server does with bad input)."""
        await self.websocket.send(frame)

    async def send(self, topic: str, payload: str | bytes) -> None:
        """Send `payload` to `topic` (text or binary frame, like the payload)."""
        await self.websocket.send(self._frames.encode(topic, payload))

    async def request(self, topic: str, payload: str | bytes, timeout: float = 5.0) -> str | bytes:
        """Send `payload` to `topic` as a request and return the handler's reply.

        The topic must have been subscribed with ``meta=True``. Raises `RequestError` for an
        error reply and TimeoutError after `timeout` seconds; other frames stay queued.
        """
        request_id, frame = self._frames.request(topic, payload)
        await self.websocket.send(frame)
        deadline = time.monotonic() + timeout
        while True:
            received = await self._next(deadline)
            reply = self._frames.reply(received, topic, request_id)
            if reply is not None:
                return reply
            self._frames.keep(received)

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

    def position(self, topic: str) -> StreamPosition | None:
        """The position of the last publication received on `topic` (or the one its ``OK``
        started from); None unless the topic was granted positions."""
        return self._frames.positions.get(topic)

    def recovered(self, topic: str) -> bool | None:
        """What the last ``OK`` of `topic` said of a recovery (None: none was asked)."""
        return self._frames.recovered.get(topic)

    async def subscribe(
        self,
        topic: str,
        timeout: float = 5.0,
        *,
        meta: bool = False,
        positions: bool = False,
        since: StreamPosition | None = None,
        presence: bool = False,
    ) -> Ok | Err:
        """SUBSCRIBE and wait for its ``OK`` or ``ERR`` (other frames stay queued for `recv`);
        with `meta`, ask for per-frame metadata, so that the topic takes `request`s; with
        `positions`, for stream positions; with `since`, to recover from that position; with
        `presence`, for the member list and its changes."""
        await self.websocket.send(encode_subscribe(topic, _options(meta, positions, since, presence)))
        reply = await self._reply_to("SUBSCRIBE", topic, timeout)
        self._frames.subscribed(reply)
        return reply

    async def unsubscribe(
        self, topic: str, code: int | None = None, reason: str | None = None, timeout: float = 5.0
    ) -> Ok | Err:
        """UNSUBSCRIBE and wait for its ``OK`` or ``ERR``."""
        await self.websocket.send(encode_unsubscribe(topic, code, reason))
        return await self._reply_to("UNSUBSCRIBE", topic, timeout)

    async def recv_presence(self, topic: str, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        """The next presence frame of `topic`: ``("state", {client_id: {"user", "info"}})``
        or ``("diff", {"joins": {…}, "leaves": {…}})`` (other frames stay queued)."""
        for index, frame in enumerate(self._frames.buffer):
            found = self._frames.presence(frame, topic)
            if found is not None:
                del self._frames.buffer[index]
                return found
        deadline = time.monotonic() + timeout
        while True:
            received = await self._next(deadline)
            found = self._frames.presence(received, topic)
            if found is not None:
                return found
            self._frames.keep(received)

    async def recv_any_data(self, timeout: float = 5.0) -> tuple[str, str | bytes]:
        """The topic and payload of the next data frame of any topic (replies excluded;
        other frames stay queued)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._frames.pop_any_data()
            if frame is not None:
                return frame
            received = await self._next(deadline)
            self._frames.keep(received)

    async def recv_data(self, topic: str, timeout: float = 5.0) -> str | bytes:
        """The payload of the next data frame for `topic` (other frames stay queued)."""
        payload = self._frames.pop_data(topic)
        deadline = time.monotonic() + timeout
        while payload is None:
            frame = await self._next(deadline)
            payload = self._frames.data(frame, topic)
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
        self.send_raw(self._frames.encode(topic, payload))

    def request(self, topic: str, payload: str | bytes, timeout: float = 5.0) -> str | bytes:
        """`MultiplexClient.request`: send a request to a ``meta`` topic, return the reply."""
        request_id, frame = self._frames.request(topic, payload)
        self.send_raw(frame)
        deadline = time.monotonic() + timeout
        while True:
            received = self._next(deadline, timeout)
            reply = self._frames.reply(received, topic, request_id)
            if reply is not None:
                return reply
            self._frames.keep(received)

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

    def subscribe(self, topic: str, timeout: float = 5.0, *, meta: bool = False) -> Ok | Err:
        """SUBSCRIBE and wait for its ``OK`` or ``ERR`` (other frames stay queued for `recv`);
        with `meta`, the topic takes `request`s."""
        self.send_raw(encode_subscribe(topic, {META: ""} if meta else None))
        reply = self._reply_to("SUBSCRIBE", topic, timeout)
        self._frames.subscribed(reply)
        return reply

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
            payload = self._frames.data(frame, topic)
            if payload is None:
                self._frames.keep(frame)
        return payload


@contextlib.contextmanager
def multiplex_testclient(
    client: Any, path: str, *, meta: bool = False, **options: Any
) -> Iterator[MultiplexTestSession]:
    """``with multiplex_testclient(TestClient(app), "/rooms/a") as mux``: a multiplexed socket.

    `path` (with its query) is the first topic; with `meta` it takes `request`s; `options`
    go to `client.websocket_connect`.
    """
    options.setdefault("subprotocols", [SUBPROTOCOL])
    with client.websocket_connect(_with_options(path) if meta else path, **options) as session:
        mux = MultiplexTestSession(session, path)
        if meta:
            mux._frames.subscribed(mux._reply_to("SUBSCRIBE", path, 5.0))
        yield mux
