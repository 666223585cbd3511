"""`MultiplexClient` and `MultiplexTestSession`: ``rocket-multiplex`` clients for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

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
from wsroute.testing.client import _close_unread, _ws_url


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
