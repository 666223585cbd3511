"""WebSocket clients that send exactly what a test says, to 127.0.0.1.

* `RawClient`: blocking, on a plain socket: frames no real client would send (invalid
  UTF-8, fragmented, oversized…), a client that stops reading, an end by TCP reset.
* `StreamClient`: an asyncio protocol for thousands of connections on one loop; it does
  the handshake, answers pings and the close, and counts (or hands over) text frames.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

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


def server_side_established(server_port: int, client_port: int) -> bool:
    """True while the server's end of the connection from `client_port` is not closed."""
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
                return state in ("01", "08")  # ESTABLISHED, CLOSE_WAIT: not closed by the server
    return False
