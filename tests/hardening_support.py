"""Helpers for the fault, hostile-input and load tests (issue 7).

* A raw WebSocket client on a plain socket: it sends frames exactly as given (invalid
  UTF-8, fragmented, oversized…), can stop reading, and can end with a TCP reset.
* A probe installed in a test app: it records every leave, and an HTTP route
  ``GET /_debug/state`` reports what is alive on the server's event loop — asyncio tasks
  (by coroutine name), broker topics with their subscriber counts, open outboxes and
  unfinished sessions — so a test can assert that nothing was left behind.

All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import gc
import os
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
from fastapi import FastAPI

from server import eventually
from wsroute import WebSocketStatus, WsRouter
from wsroute.outbox import Outbox
from wsroute.session import Session

HOST = "127.0.0.1"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


# --- frames ---------------------------------------------------------------------------------


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    """A masked client frame, built by hand: no check of what the payload contains."""
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    length = len(payload)
    if length < 126:
        head.append(0x80 | length)
    elif length < 1 << 16:
        head.append(0x80 | 126)
        head += struct.pack("!H", length)
    else:
        head.append(0x80 | 127)
        head += struct.pack("!Q", length)
    mask = os.urandom(4)
    head += mask
    return bytes(head) + _xor(payload, mask)


def _xor(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return b""
    repeat = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeat, "big")).to_bytes(len(payload), "big")


def close_payload(code: int, reason: str = "") -> bytes:
    """The payload of a close frame."""
    return struct.pack("!H", code) + reason.encode()


def handshake_request(path: str, port: int, headers: Mapping[str, str] | None = None) -> bytes:
    """A minimal HTTP/1.1 upgrade request."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Closed:
    """What the raw client saw at the end: the close frame's code and reason, or None (no frame)."""

    code: int | None
    reason: str = ""
    at: float = 0.0
    """When the raw client read it (`time.monotonic`); 0 for `StreamClient`."""


class RawClient:
    """A blocking WebSocket client on a plain socket, for input no real client would send."""

    def __init__(self, sock: socket.socket, status: int, response: bytes, rest: bytes) -> None:
        self.sock = sock
        self.status = status
        self.response = response
        self._buffer = bytearray(rest)

    @classmethod
    def connect(
        cls,
        port: int,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        rcvbuf: int | None = None,
        timeout: float = 5.0,
    ) -> RawClient:
        """Connect and do the handshake; `status` is the HTTP status (101 when accepted)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect((HOST, port))
        sock.sendall(handshake_request(path, port, headers))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(1 if rcvbuf is not None else 4096)
            if not chunk:
                raise ConnectionError(f"closed during the handshake: {data!r}")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            # Read the rest of the response (the denial body).
            try:
                while True:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    rest += chunk
            except OSError:
                pass
        return cls(sock, status, head, rest)

    def send(self, data: bytes) -> None:
        """Send raw bytes (one or more frames)."""
        self.sock.sendall(data)

    def _fill(self, n: int, deadline: float) -> bool:
        while len(self._buffer) < n:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise AssertionError("no frame from the server in time") from None
            except ConnectionResetError:
                return False
            if not chunk:
                return False
            self._buffer += chunk
        return True

    def read_frame(self, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """The next server frame as (opcode, payload); None once the server closed TCP."""
        deadline = time.monotonic() + timeout
        if not self._fill(2, deadline):
            return None
        b0, b1 = self._buffer[0], self._buffer[1]
        length, offset = b1 & 0x7F, 2
        if length == 126:
            if not self._fill(4, deadline):
                return None
            length, offset = struct.unpack("!H", self._buffer[2:4])[0], 4
        elif length == 127:
            if not self._fill(10, deadline):
                return None
            length, offset = struct.unpack("!Q", self._buffer[2:10])[0], 10
        if not self._fill(offset + length, deadline):
            return None
        payload = bytes(self._buffer[offset : offset + length])
        del self._buffer[: offset + length]
        return b0 & 0x0F, payload

    def read_until_close(self, timeout: float = 5.0, max_frames: int = 100_000) -> Closed:
        """Skip data frames until the server's close frame (answered) or the end of TCP.

        Fails once `timeout` has passed or `max_frames` data frames were skipped, even while
        the server keeps sending: a server that never closes must not hold the test up.
        """
        deadline = time.monotonic() + timeout
        for _ in range(max_frames):
            if time.monotonic() > deadline:
                raise AssertionError(f"no close frame from the server within {timeout}s")
            frame = self.read_frame(max(0.01, deadline - time.monotonic()))
            if frame is None:
                return Closed(None, at=time.monotonic())
            opcode, payload = frame
            if opcode == OP_CLOSE:
                at = time.monotonic()
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                with contextlib.suppress(OSError):
                    self.send(client_frame(OP_CLOSE, payload[:2]))
                return Closed(code, payload[2:].decode(errors="replace"), at)
        raise AssertionError(f"no close frame from the server after {max_frames} data frames")

    def reset(self) -> None:
        """End with a TCP reset (SO_LINGER 0): no close frame, no FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        """Close the socket (FIN)."""
        self.sock.close()


# --- the server-side probe ------------------------------------------------------------------


@dataclass
class Leave:
    """One leave seen by the server."""

    id: str
    topic: str
    code: int
    reason: str


@dataclass
class Probe:
    """What the server saw, read by the tests (the server may run in another thread)."""

    leaves: list[Leave] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    shutdown_state: dict[str, Any] | None = None

    def left(self, id_: str) -> list[Leave]:
        with self.lock:
            return [leave for leave in self.leaves if leave.id == id_]

    def record(self, id_: str, topic: str, code: int, reason: str) -> None:
        with self.lock:
            self.leaves.append(Leave(id_, topic, code, reason))


def task_names(exclude: asyncio.Task[Any] | None = None) -> dict[str, int]:
    """Live asyncio tasks of the running loop, counted by coroutine name."""
    counts: collections.Counter[str] = collections.Counter()
    for task in asyncio.all_tasks():
        if task is exclude:
            continue
        coro = task.get_coro()
        counts[getattr(coro, "__qualname__", repr(coro))] += 1
    return dict(counts)


def session_left(session: Session) -> bool:
    """Whether the session's leave has run to its end (not merely started)."""
    return session.left


def live_objects() -> dict[str, int]:
    """Outboxes still open and sessions whose leave has not completed, anywhere in this process."""
    gc.collect()
    outboxes = sessions = 0
    for obj in gc.get_objects():
        if isinstance(obj, Outbox):
            if not obj.closed:
                outboxes += 1
        elif isinstance(obj, Session) and not session_left(obj):
            sessions += 1
    return {"open_outboxes": outboxes, "unfinished_sessions": sessions}


def server_state(router: WsRouter) -> dict[str, Any]:
    """What is alive on the server's loop (call it on that loop)."""
    return {
        "tasks": task_names(exclude=asyncio.current_task()),
        "topics": router.broker.local_topics(),
        **live_objects(),
    }


def install_state_route(app: FastAPI, router: WsRouter) -> None:
    """``GET /_debug/state``: `server_state` of the running server."""

    @app.get("/_debug/state")
    async def state() -> dict[str, Any]:
        return server_state(router)


async def get_state(port: int) -> dict[str, Any]:
    """The server's `server_state`, over HTTP."""
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        response = await http.get(f"http://{HOST}:{port}/_debug/state")
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state


async def assert_back_to(port: int, baseline: Mapping[str, Any], timeout: float = 5.0) -> None:
    """Wait until the server's state equals `baseline` (no task, queue or subscription left)."""
    deadline = time.monotonic() + timeout
    while True:
        state = await get_state(port)
        if state == baseline:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"server state did not return to the baseline:\n{state}\n!=\n{baseline}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def clean(port: int, timeout: float = 5.0) -> AsyncIterator[dict[str, Any]]:
    """Take the server's state before the block (no topic, no open outbox); after it, require
    that state again: no task, queue, subscription or session left behind."""
    baseline = await get_state(port)
    assert baseline["topics"] == {} and baseline["open_outboxes"] == 0, baseline
    yield baseline
    await assert_back_to(port, baseline, timeout)


async def exactly_once(probe: Probe, id_: str, settle: float = 0.1, timeout: float = 5.0) -> Leave:
    """Wait for the leave of connection `id_`, then check no second one comes.

    `settle` must be longer than the slowest leave handler a duplicate would run: a second
    leave records only when its handler returns.
    """
    await eventually(lambda: bool(probe.left(id_)), timeout, what=f"leave of {id_}")
    await asyncio.sleep(settle)
    leaves = probe.left(id_)
    assert len(leaves) == 1, leaves
    return leaves[0]


# --- many clients on one event loop -----------------------------------------------------------


class StreamClient(asyncio.Protocol):
    """A minimal WebSocket client for thousands of connections on one loop.

    It does the handshake, answers pings and the close handshake, and hands every text
    frame's payload to `on_text`, or just counts them.
    """

    def __init__(
        self,
        path: str,
        port: int,
        *,
        headers: Mapping[str, str] | None = None,
        on_text: Any = None,
    ) -> None:
        self.request = handshake_request(path, port, headers)
        self.on_text = on_text
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[int] = loop.create_future()
        self.closed: asyncio.Future[Closed] = loop.create_future()
        self.texts = 0
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but behave like one.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = int(bytes(buffer[:end]).split(b" ", 2)[1])
            del buffer[: end + 4]
            self._open = status == 101
            if not self.opened.done():
                self.opened.set_result(status)
            if not self._open:
                assert self.transport is not None
                self.transport.close()
                return
        self._parse()

    def _parse(self) -> None:
        buffer = self._buffer
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            b0, length = buffer[pos], buffer[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = (buffer[pos + 2] << 8) | buffer[pos + 3], 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + length:
                break
            start = pos + head
            pos = start + length
            opcode = b0 & 0x0F
            if opcode == OP_TEXT:
                self.texts += 1
                if self.on_text is not None:
                    self.on_text(bytes(buffer[start:pos]))
            elif opcode == OP_PING:
                self.send(OP_PONG, bytes(buffer[start:pos]))
            elif opcode == OP_CLOSE:
                payload = bytes(buffer[start:pos])
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                if not self.closed.done():
                    self.closed.set_result(Closed(code, payload[2:].decode(errors="replace")))
                self.send(OP_CLOSE, payload[:2])
                assert self.transport is not None
                self.transport.close()
                pos = size
                break
        del buffer[:pos]

    def send(self, opcode: int, payload: bytes) -> None:
        """Send one masked frame."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake."""
        self.send(OP_CLOSE, close_payload(code))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost during the handshake: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result(Closed(None))


async def open_clients(
    port: int,
    paths: list[str],
    *,
    concurrency: int = 200,
    **options: Any,
) -> list[StreamClient]:
    """Open one `StreamClient` per path, `concurrency` handshakes at a time; all must be accepted."""
    loop = asyncio.get_running_loop()
    clients: list[StreamClient] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(path: str) -> StreamClient:
        async with gate:
            _, client = await loop.create_connection(lambda: StreamClient(path, port, **options), HOST, port)
            status = await asyncio.wait_for(client.opened, 30)
            assert status == 101, (path, status)
            return client

    clients = list(await asyncio.gather(*(one(path) for path in paths)))
    return clients


# --- the load-test app (served by a uvicorn subprocess) -------------------------------------------


def create_load_app() -> FastAPI:
    """The app of `test_load.py` (``uvicorn --factory hardening_support:create_load_app``).

    * ``/feed``: receive-only clients; ``/flood``: a second topic for the client that never
      reads (it subscribes over a multiplexed socket); leaves are counted by close code.
    * ``POST /publish?topic=&count=&interval=&size=``: broadcasts ``count`` messages
      ``"<seq>:<due>:<padding>"`` ``interval`` seconds apart (``due``: the monotonic time in
      ns the message was scheduled for), then answers with the sequence numbers it used (one
      counter for all topics).
    * ``POST /gc``: a full garbage collection now (how long it took).
    * ``GET /stats``: topics, leaves by code (and when the latest of each code ran), live
      tasks, the queue length of ``/flood``'s subscriber, the pause of each automatic full
      garbage collection so far.
    """
    router = WsRouter(
        max_queue=int(os.environ.get("WSROUTE_LOAD_MAX_QUEUE", "256")),
        max_queue_bytes=int(os.environ.get("WSROUTE_LOAD_MAX_QUEUE_BYTES", str(1 << 20))),
    )
    leaves: collections.Counter[int] = collections.Counter()
    # When the latest leave of each code ran (monotonic ns, the clock the test process reads too).
    last_leave_ns: dict[int, int] = {}
    sequence = {"next": 0}
    # Pauses of the cyclic garbage collector's automatic full (generation 2) collections, in s.
    gc_pauses: list[float] = []
    gc_started = [0.0]
    explicit = [False]

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2 and not explicit[0]:
            if phase == "start":
                gc_started[0] = time.perf_counter()
            else:
                gc_pauses.append(time.perf_counter() - gc_started[0])

    gc.callbacks.append(gc_timer)

    @router.message("/feed")
    async def feed(data: str) -> None:
        pass

    @router.message("/flood")
    async def flood(data: str) -> None:
        pass

    @router.leave("/{rest:path}")
    async def left(status: WebSocketStatus) -> None:
        leaves[status.code] += 1
        last_leave_ns[status.code] = time.monotonic_ns()

    app = FastAPI()

    @app.post("/publish")
    async def publish(
        topic: str = "/feed", count: int = 1, interval: float = 0.0, size: int = 0
    ) -> dict[str, list[int]]:
        pad = "x" * size
        seqs = []
        # Each message carries the time it was due, not the time it went out: a stall of
        # the server delays the publishing too, and must still count as latency.
        start = time.monotonic_ns()
        for i in range(count):
            due = start + int(i * interval * 1e9)
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            seq = sequence["next"]
            sequence["next"] += 1
            seqs.append(seq)
            await router.broker.broadcast_to(topic, f"{seq}:{due}:{pad}")
        return {"seqs": seqs}

    @app.post("/gc")
    async def collect() -> dict[str, float]:
        started = time.perf_counter()
        explicit[0] = True
        try:
            gc.collect()
        finally:
            explicit[0] = False
        return {"seconds": time.perf_counter() - started}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return {
            "topics": router.broker.local_topics(),
            "leaves": {str(code): n for code, n in leaves.items()},
            "last_leave_ns": {str(code): ns for code, ns in last_leave_ns.items()},
            "tasks": task_names(exclude=asyncio.current_task()),
            # Longest outgoing queue among /flood's subscribers (the client that never reads).
            "gc_pauses": gc_pauses,
            "flood_queue": max(
                (len(getattr(sub, "outbox", ())) for sub in router.broker.subscribers("/flood")), default=0
            ),
        }

    router.install(app)
    return app
