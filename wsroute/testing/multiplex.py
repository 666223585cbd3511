"""`MultiplexClient` and `MultiplexTestSession`: ``rocket-multiplex`` clients for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

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
    ServerUnsubscribe,
    _quote_non_ascii,
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
from wsroute.status import MAX_REASON_BYTES
from wsroute.testing.client import _close_unread, _ws_url

if TYPE_CHECKING:
    from starlette.testclient import TestClient, WebSocketTestSession
    from websockets.asyncio.client import ClientConnection

T = TypeVar("T")


class RequestError(Exception):
    """The server answered a request with an error: `code` and `reason` are what the error
    would have closed the topic with (e.g. 1007 for an invalid payload, 1011 for a bug)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"request failed with {code}: {reason}")
        self.code = code
        self.reason = reason


class TopicClosed(Exception):
    """The server closed the topic a call was waiting on (``·UNSUBSCRIBE·topic·code·reason``):
    its `leave` ran with `code` (1011 when a handler raised, the code of a
    ``broker.unsubscribe``, …). Raised at once instead of waiting out the timeout."""

    def __init__(self, topic: str, code: int, reason: str) -> None:
        super().__init__(f"the server closed {topic} with {code}: {reason}")
        self.topic = topic
        self.code = code
        self.reason = reason


def _parse(raw: str | bytes) -> ServerFrame:
    if isinstance(raw, str):
        return parse_server_frame(raw, None)
    return parse_server_frame(None, bytes(raw))


def _encode(topic: str, payload: str | bytes) -> str | bytes:
    return encode_text(topic, payload) if isinstance(payload, str) else encode_binary(topic, payload)


# What a call waits for is a *match*: a function of a frame that returns what the call returns
# in a 1-tuple (so that mypy infers a union such as `str | bytes` whole), or None for a frame
# that is not it (kept for later calls).
Match = Callable[[ServerFrame], tuple[T] | None]


def _reply_to(action: str, topic: str) -> Match[Ok | Err]:
    """A match for the server's ``OK`` or ``ERR`` to `action` on `topic`."""

    def match(frame: ServerFrame) -> tuple[Ok | Err] | None:
        if isinstance(frame, Ok | Err) and frame.action == action and frame.params[:1] == (topic,):
            return (frame,)
        return None

    return match


class _Frames:
    """A multiplexed client's bookkeeping, shared by the async and the sync client (no I/O
    here): frames received while waiting for another one, kept for later calls; which topics
    the server frames with metadata; positions; request ids; the matches of the calls."""

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

    def take(self, match: Match[T]) -> tuple[T] | None:
        """What `match` makes of the first kept frame it accepts, taken out of the buffer (a
        frame whose match raises is taken out too: it has been reported)."""
        for index, frame in enumerate(self.buffer):
            try:
                found = match(frame)
            except Exception:
                del self.buffer[index]
                raise
            if found is not None:
                del self.buffer[index]
                return found
        return None

    def subscribed(self, reply: Ok | Err) -> None:
        """Note whether an ``OK`` granted ``meta`` to its topic, where its positions start, and
        what it said of a recovery; an ``ERR`` leaves the topic with none of them."""
        if isinstance(reply, Err):
            return  # nothing changed (an "Already Subscribed" topic keeps what it had)
        topic, *rest = reply.params
        self.positions.pop(topic, None)
        self.recovered.pop(topic, None)
        self.meta.discard(topic)
        # A close of the topic's earlier subscription, still queued, is not this one's.
        for frame in [f for f in self.buffer if isinstance(f, ServerUnsubscribe) and f.topic == topic]:
            self.buffer.remove(frame)
        items = parse_items(rest[0]) if rest else {}
        if META in items:
            self.meta.add(topic)
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

    def _split(self, frame: ServerFrame, topic: str) -> tuple[dict[str, str], str | bytes] | None:
        """The metadata and payload of `frame` if it is data for `topic`; TopicClosed if it
        is the server's close of `topic`."""
        if isinstance(frame, ServerUnsubscribe) and frame.topic == topic:
            raise TopicClosed(topic, frame.code, frame.reason)
        if not isinstance(frame, DataFrame) or frame.topic != topic:
            return None
        if topic not in self.meta:
            return {}, frame.text if frame.text is not None else frame.data or b""
        items, text, data = split_meta(frame.text, frame.data)
        return items, text if text is not None else data or b""

    def data(self, frame: ServerFrame, topic: str) -> tuple[str | bytes] | None:
        """Match: the payload of a data frame for `topic` (a reply or presence frame is not
        one); the topic's position moves to it."""
        split = self._split(frame, topic)
        if split is None or "reply" in split[0] or "presence" in split[0]:
            return None
        items, payload = split
        if "offset" in items:
            held = self.positions.get(topic)
            epoch = items.get("epoch") or (held.epoch if held is not None else "")
            self.positions[topic] = StreamPosition(epoch, int(items["offset"]))
        return (payload,)

    def any_data(self, frame: ServerFrame) -> tuple[tuple[str, str | bytes]] | None:
        """Match: ``(topic, payload)`` of a data frame of any topic."""
        if not isinstance(frame, DataFrame):
            return None
        found = self.data(frame, frame.topic)
        return None if found is None else ((frame.topic, found[0]),)

    def presence(self, frame: ServerFrame, topic: str) -> tuple[tuple[str, dict[str, Any]]] | None:
        """Match: ``(kind, body)`` of a presence frame of `topic`."""
        split = self._split(frame, topic)
        if split is None or "presence" not in split[0]:
            return None
        return ((split[0]["presence"], json.loads(split[1])),)

    def reply(self, frame: ServerFrame, topic: str, request_id: str) -> tuple[str | bytes] | None:
        """Match: the payload of the reply to `request_id`; RequestError for an error reply."""
        split = self._split(frame, topic)
        if split is None or split[0].get("reply") != request_id:
            return None
        items, payload = split
        if "error" in items:
            reason = payload if isinstance(payload, str) else payload.decode()
            raise RequestError(int(items["error"]), reason)
        return (payload,)


def _checked_reason(reason: str | None) -> str | None:
    if reason is not None and len(reason.encode("utf-8", "surrogatepass")) > MAX_REASON_BYTES:
        raise ValueError(f"an UNSUBSCRIBE reason is at most {MAX_REASON_BYTES} UTF-8 bytes")
    return reason


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


class _Multiplexed:
    """What the async and the sync client share: the first topic and the bookkeeping."""

    def __init__(self, first_topic: str) -> None:
        self.first_topic = first_topic
        self._frames = _Frames()

    def position(self, topic: str) -> StreamPosition | None:
        """The position of the last publication received on `topic` (or the one its ``OK``
        started from); None unless the topic was granted positions."""
        return self._frames.positions.get(topic)

    def recovered(self, topic: str) -> bool | None:
        """What the last ``OK`` of `topic` said of a recovery (None: none was asked)."""
        return self._frames.recovered.get(topic)

    def _timed_out(self, timeout: float) -> TimeoutError:
        return TimeoutError(f"no frame on the socket of {self.first_topic} within {timeout}s")


class MultiplexClient(_Multiplexed):
    """A ``rocket-multiplex`` client over a real socket; frames come back parsed by the codec.

    A call that waits for a topic's frame (`recv_data`, `request`, `recv_presence`) raises
    `TopicClosed` when the server closes that topic instead, and TimeoutError naming the
    socket when nothing comes within its `timeout`; frames it does not want stay queued for
    later calls.
    """

    def __init__(self, websocket: ClientConnection, first_topic: str) -> None:
        super().__init__(first_topic)
        self.websocket = websocket

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
        timeout: float = 5.0,
        **options: Any,
    ) -> AsyncIterator[MultiplexClient]:
        """Open a socket to `url` (its path and query are the first topic).

        `url` is written as for `connect`; `options` go to `websockets.connect`. With
        `meta`, the first topic asks for per-frame metadata (so it takes `request`s);
        with `positions`, for stream positions (`position`); with `since`, to recover from
        that position (`recovered`); with `presence`, for the member list and its changes
        (`recv_presence`). With any of them the server's ``OK`` is awaited here. `timeout`
        bounds the handshake, that ``OK`` and the close. The first topic is the path as sent:
        a non-ASCII one percent-encoded, as a browser does (``/rooms/caf%C3%A9``).
        """
        import websockets
        from websockets.typing import Subprotocol
        from websockets.uri import parse_uri

        target = _ws_url(url)
        options.setdefault("proxy", None)
        options.setdefault("subprotocols", [Subprotocol(SUBPROTOCOL)])
        options.setdefault("open_timeout", timeout)
        options.setdefault("close_timeout", timeout)
        wanted = _options(meta, positions, since, presence)
        first_url = _with_options(target, wanted) if wanted else target
        websocket = await websockets.connect(first_url, **options)
        try:
            client = cls(websocket, parse_uri(target).resource_name)
            if wanted:
                client._frames.subscribed(
                    await client._wait(_reply_to("SUBSCRIBE", client.first_topic), timeout)
                )
            yield client
        finally:
            await _close_unread(websocket)

    async def _next(self, deadline: float, timeout: float) -> ServerFrame:
        try:
            raw = await asyncio.wait_for(self.websocket.recv(), max(deadline - time.monotonic(), 0.0))
        except TimeoutError:
            raise self._timed_out(timeout) from None
        return _parse(raw)

    async def _wait(self, match: Match[T], timeout: float, kept: bool = False) -> T:
        """What `match` makes of the next frame it accepts: first among the `kept` frames if
        asked, then from the socket, keeping the others."""
        found = self._frames.take(match) if kept else None
        deadline = time.monotonic() + timeout
        while found is None:
            frame = await self._next(deadline, timeout)
            found = match(frame)
            if found is None:
                self._frames.keep(frame)
        return found[0]

    async def send_raw(self, frame: str | bytes) -> None:
        """Send a frame exactly as given (to test what the server does with bad input)."""
        await self.websocket.send(frame)

    async def send(self, topic: str, payload: str | bytes) -> None:
        """Send `payload` to `topic` (text or binary frame, like the payload)."""
        await self.websocket.send(self._frames.encode(topic, payload))

    async def request(self, topic: str, payload: str | bytes, timeout: float = 5.0) -> str | bytes:
        """Send `payload` to `topic` as a request and return the handler's reply.

        The topic must have been subscribed with ``meta=True``. Raises `RequestError` for an
        error reply; other frames stay queued.
        """
        request_id, frame = self._frames.request(topic, payload)
        await self.websocket.send(frame)
        return await self._wait(lambda f: self._frames.reply(f, topic, request_id), timeout)

    async def recv(self, timeout: float = 5.0) -> ServerFrame:
        """The next frame from the server, parsed (a queued one first)."""
        frame = self._frames.pop()
        return frame if frame is not None else await self._next(time.monotonic() + timeout, timeout)

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
        reply = await self._wait(_reply_to("SUBSCRIBE", topic), timeout)
        self._frames.subscribed(reply)
        return reply

    async def unsubscribe(
        self, topic: str, code: int | None = None, reason: str | None = None, timeout: float = 5.0
    ) -> Ok | Err:
        """UNSUBSCRIBE and wait for its ``OK`` or ``ERR``. A `reason` over 123 UTF-8 bytes
        raises ValueError, as ``WebSocket.close()`` refuses it (the server would answer
        ``INVALID``; send it with ``websocket.send`` to test that)."""
        await self.websocket.send(encode_unsubscribe(topic, code, _checked_reason(reason)))
        return await self._wait(_reply_to("UNSUBSCRIBE", topic), timeout)

    async def recv_presence(self, topic: str, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        """The next presence frame of `topic`: ``("state", {client_id: {"user", "info"}})``
        or ``("diff", {"joins": {…}, "leaves": {…}})`` (other frames stay queued)."""
        return await self._wait(lambda f: self._frames.presence(f, topic), timeout, kept=True)

    async def recv_any_data(self, timeout: float = 5.0) -> tuple[str, str | bytes]:
        """The topic and payload of the next data frame of any topic (replies excluded;
        other frames stay queued)."""
        return await self._wait(self._frames.any_data, timeout, kept=True)

    async def recv_data(self, topic: str, timeout: float = 5.0) -> str | bytes:
        """The payload of the next data frame for `topic` (other frames stay queued)."""
        return await self._wait(lambda f: self._frames.data(f, topic), timeout, kept=True)


class MultiplexTestSession(_Multiplexed):
    """`MultiplexClient`'s calls, synchronous, over a Starlette `TestClient` WebSocket session.

    No socket and no thread of yours: for handler logic. A close from the server raises
    `starlette.websockets.WebSocketDisconnect`; the server's close of a topic a call waits
    on raises `TopicClosed`; a receive that waits more than `timeout` seconds raises
    TimeoutError.
    """

    def __init__(self, session: WebSocketTestSession, first_topic: str) -> None:
        super().__init__(first_topic)
        self.session = session

    def _receive(self, timeout: float) -> Any:
        """The session's next ASGI message, waiting at most `timeout` seconds.

        Starlette's own `receive()` waits forever; its message stream is private, and was a
        `queue.Queue` in older versions, so both are handled.
        """
        session: Any = self.session
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

        try:
            message = self._receive(max(deadline - time.monotonic(), 0.0))
        except TimeoutError:
            raise self._timed_out(timeout) from None
        if message["type"] == "websocket.close":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason") or "")
        text = message.get("text")
        return _parse(text if text is not None else message.get("bytes") or b"")

    def _wait(self, match: Match[T], timeout: float, kept: bool = False) -> T:
        """`MultiplexClient._wait`, synchronous."""
        found = self._frames.take(match) if kept else None
        deadline = time.monotonic() + timeout
        while found is None:
            frame = self._next(deadline, timeout)
            found = match(frame)
            if found is None:
                self._frames.keep(frame)
        return found[0]

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
        return self._wait(lambda f: self._frames.reply(f, topic, request_id), timeout)

    def recv(self, timeout: float = 5.0) -> ServerFrame:
        """The next frame from the server, parsed (a queued one first)."""
        frame = self._frames.pop()
        return frame if frame is not None else self._next(time.monotonic() + timeout, timeout)

    def subscribe(
        self,
        topic: str,
        timeout: float = 5.0,
        *,
        meta: bool = False,
        positions: bool = False,
        since: StreamPosition | None = None,
        presence: bool = False,
    ) -> Ok | Err:
        """`MultiplexClient.subscribe`: SUBSCRIBE and wait for its ``OK`` or ``ERR``."""
        self.send_raw(encode_subscribe(topic, _options(meta, positions, since, presence)))
        reply = self._wait(_reply_to("SUBSCRIBE", topic), timeout)
        self._frames.subscribed(reply)
        return reply

    def unsubscribe(
        self, topic: str, code: int | None = None, reason: str | None = None, timeout: float = 5.0
    ) -> Ok | Err:
        """`MultiplexClient.unsubscribe`: UNSUBSCRIBE and wait for its ``OK`` or ``ERR``."""
        self.send_raw(encode_unsubscribe(topic, code, _checked_reason(reason)))
        return self._wait(_reply_to("UNSUBSCRIBE", topic), timeout)

    def recv_presence(self, topic: str, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        """`MultiplexClient.recv_presence`: the next presence frame of `topic`."""
        return self._wait(lambda f: self._frames.presence(f, topic), timeout, kept=True)

    def recv_any_data(self, timeout: float = 5.0) -> tuple[str, str | bytes]:
        """`MultiplexClient.recv_any_data`: topic and payload of the next data frame."""
        return self._wait(self._frames.any_data, timeout, kept=True)

    def recv_data(self, topic: str, timeout: float = 5.0) -> str | bytes:
        """The payload of the next data frame for `topic` (other frames stay queued)."""
        return self._wait(lambda f: self._frames.data(f, topic), timeout, kept=True)


@contextlib.contextmanager
def multiplex_testclient(
    client: TestClient,
    path: str,
    *,
    meta: bool = False,
    positions: bool = False,
    since: StreamPosition | None = None,
    presence: bool = False,
    **options: Any,
) -> Iterator[MultiplexTestSession]:
    """``with multiplex_testclient(TestClient(app), "/rooms/a") as mux``: a multiplexed socket.

    `path` (with its query) is the first topic, as sent (a non-ASCII one percent-encoded);
    `meta`, `positions`, `since` and `presence` ask what `MultiplexClient.connect`'s do;
    `options` go to `client.websocket_connect`.
    """
    options.setdefault("subprotocols", [SUBPROTOCOL])
    wanted = _options(meta, positions, since, presence)
    with client.websocket_connect(_with_options(path, wanted) if wanted else path, **options) as session:
        raw, mark, query = path.partition("?")
        # The topic as the test client sends it, as `MultiplexClient.connect` says.
        mux = MultiplexTestSession(session, _quote_non_ascii(raw) + mark + _quote_non_ascii(query))
        if wanted:
            mux._frames.subscribed(mux._wait(_reply_to("SUBSCRIBE", mux.first_topic), 5.0))
        yield mux
