"""A TCP proxy on 127.0.0.1 whose connections a test can cut (a reset, no WebSocket close),
stall (bytes silently lost one way), slow (answers held back) and whose new connections it
can refuse for a while: a network that drops and comes back."""

from __future__ import annotations

import asyncio
import contextlib

HOST = "127.0.0.1"


class CuttableProxy:
    """Forwards every connection to 127.0.0.1:`port`. `start` listens (returns the port);
    `cut` aborts every connection; while `down`, new connections are aborted at once; what
    goes ``"up"`` (client to server) or ``"down"`` while in `dropping` is lost on the way.
    Once a connection sends bytes containing `hold_after`, what the server answers on it is
    held back until `release` (a slow server, seen from one client); once it sends bytes
    containing `stall_after`, the proxy stops reading what it sends until `release`, so its
    writes block when the socket buffers are full (a server that stopped reading)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.down = False
        self.dropping: set[str] = set()
        self.hold_after: bytes | None = None
        self.held = 0  # connections whose answers are being held back
        self.stall_after: bytes | None = None
        self.stalled = 0  # connections no longer read from
        self._released = asyncio.Event()
        self.transports: list[asyncio.BaseTransport] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; the port to connect to."""
        self.server = await asyncio.start_server(self._handle, HOST, 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> CuttableProxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target)
        except OSError:
            writer.transport.abort()
            return
        self.transports += [writer.transport, up_writer.transport]
        holding = False

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, way: str) -> None:
            nonlocal holding
            with contextlib.suppress(OSError, RuntimeError):
                while data := await src.read(65536):
                    if way in self.dropping:
                        continue  # a dead link that still looks open
                    if way == "up" and not holding and self.hold_after and self.hold_after in data:
                        holding = True
                        self.held += 1
                    if way == "down" and holding:
                        await self._released.wait()
                    dst.write(data)
                    await dst.drain()
                    if way == "up" and self.stall_after and self.stall_after in data:
                        self.stalled += 1
                        await self._released.wait()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer, "up"), pipe(up_reader, writer, "down"))

    def release(self) -> None:
        """Stop holding answers back: what was held goes on, in order."""
        self.hold_after = self.stall_after = None
        self._released.set()

    def cut(self) -> None:
        """Abort every open connection (a reset, no WebSocket close)."""
        for transport in self.transports:
            transport.abort()
        self.transports.clear()
