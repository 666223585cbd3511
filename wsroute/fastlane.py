"""Fastlane: an opt-in uvicorn WebSocket protocol that writes a broadcast's frame once-encoded.

Through plain ASGI every subscriber of a broadcast costs one ``websocket.send``, and the
server frames the same payload again for each. With this protocol a broadcast is framed
**once** and the same bytes are written straight to every idle subscriber's transport:

```python
uvicorn app:app --ws wsroute.fastlane:FastlaneProtocol
```

It is uvicorn's own ``websockets-sansio`` protocol with one addition: the ASGI extension
``wsroute.fastlane`` in the connection scope, ``{"write": write(frame: bytes) -> bool}``.
`write` takes pre-encoded frame bytes and returns True, or returns False when the
connection cannot take them right now (not open, closing, transport paused by
backpressure) — wsroute then takes the normal queued ASGI path, so correctness never
depends on the fast path and the slow-consumer policy still holds. Handshake, receive,
close and ping/pong stay uvicorn's.

Frames taken in one event-loop iteration leave in **one write** at its end (broadcasts
published together cost one send syscall per subscriber, which is most of a delivery's
cost); any other write on the connection sends them first, so the wire keeps call order.

The extension also carries ``abort()``: a client evicted as a slow consumer whose close
frame cannot be written is dropped at once instead of holding its socket open.

The protocol never negotiates permessage-deflate: a compressed frame depends on each
connection's compression context and cannot be shared between sockets.

Supported uvicorn: 0.52.1 and newer (tested up to 0.55.0). The protocol builds on the
internals of uvicorn's ``WebSocketsSansIOProtocol``, so importing this module (which
``--ws wsroute.fastlane:FastlaneProtocol`` does when the server starts) checks them and
raises `UnsupportedUvicorn` when uvicorn is older than 0.52.1 or lacks any of them. A newer
uvicorn whose internals still match runs without a warning.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import weakref
from typing import Any

import uvicorn
from websockets.protocol import State
from websockets.server import ServerProtocol

from wsroute.fastlane_extension import EXTENSION

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # uvicorn before 0.35: refused with a clear message just below
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]

__all__ = ["EXTENSION", "MIN_UVICORN", "TESTED_UVICORN", "FastlaneProtocol", "UnsupportedUvicorn"]

MIN_UVICORN = "0.52.1"
"""The oldest uvicorn the fastlane runs on: the first whose websockets-sansio protocol tracks
backpressure (``pause_writing``) and a lost connection (``disconnected``)."""

TESTED_UVICORN = "0.55.0"
"""The newest uvicorn the fastlane was tested on; newer ones run while their internals match."""

# What FastlaneProtocol overrides or extends through super(), with the parameters it passes.
# pause_writing/resume_writing are uvicorn's own only from 0.52.1 (before, asyncio's no-ops
# left `writable` always set, and a slow client would have been written to without limit).
_METHODS: dict[str, tuple[str, ...]] = {
    "connection_made": ("transport",),
    "handle_connect": ("event",),
    "send": ("message",),
    "pause_writing": (),
    "resume_writing": (),
}
# Connection state it reads or replaces, set up by uvicorn's methods.
_STATE = (
    "config",
    "conn",
    "loop",
    "transport",
    "scope",
    "handshake_complete",
    "close_sent",
    "disconnected",
    "initial_response",
    "writable",
)


class UnsupportedUvicorn(RuntimeError):
    """The installed uvicorn lacks what the fastlane builds on; raised when it is imported."""


def _version_tuple(version: str) -> tuple[int, int, int] | None:
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def _missing_internals(base: type) -> list[str]:
    """The methods and attributes of `base` (uvicorn's protocol) the fastlane needs but lacks."""
    missing: list[str] = []
    own = [klass for klass in base.__mro__ if klass.__module__.startswith("uvicorn.")]
    for name, parameters in _METHODS.items():
        # Only uvicorn's own definition counts: asyncio.Protocol has no-op defaults for some.
        method = next((vars(klass)[name] for klass in own if name in vars(klass)), None)
        try:
            signature = inspect.signature(method) if method is not None else None
        except (TypeError, ValueError):
            signature = None
        if signature is None or tuple(signature.parameters)[1:] != parameters:
            missing.append(f"{name}({', '.join(parameters)})")
        elif name == "send" and not inspect.iscoroutinefunction(method):
            missing.append("async send(message)")
    # Instance attributes exist only once a connection is made; the names uvicorn's code
    # reads and assigns are the compiled functions' attribute names.
    used: set[str] = set()
    for klass in own:
        for value in vars(klass).values():
            code = getattr(value, "__code__", None)
            if code is not None:
                used.update(code.co_names)
    missing.extend(name for name in _STATE if name not in used)
    return missing


def _check_uvicorn(version: str, base: type | None) -> None:
    """Raise `UnsupportedUvicorn` unless uvicorn `version`, with protocol class `base`, is usable."""
    parsed = _version_tuple(version)
    minimum = _version_tuple(MIN_UVICORN)
    if base is None:
        problem = "it has no websockets-sansio protocol"
    elif parsed is not None and minimum is not None and parsed < minimum:
        problem = f"it is older than {MIN_UVICORN}"
    else:
        missing = _missing_internals(base)
        if not missing:
            return
        problem = "its WebSocketsSansIOProtocol lacks " + ", ".join(missing)
    raise UnsupportedUvicorn(
        f"wsroute.fastlane cannot run on the installed uvicorn {version}: {problem}. "
        f"The fastlane supports uvicorn {MIN_UVICORN} and newer (tested up to {TESTED_UVICORN}). "
        f"Fix: pip install 'uvicorn>={MIN_UVICORN}', or serve with --ws websockets-sansio."
    )


# At import, so `--ws wsroute.fastlane:FastlaneProtocol` fails as the server starts rather
# than with an AttributeError at the first broadcast.
_check_uvicorn(uvicorn.__version__, WebSocketsSansIOProtocol)


# Held bytes past which a transport is written at once (uvloop's default high-water mark).
_MAX_HELD = 64 * 1024


class _Flusher:
    """Writes the frames held by this loop's transports, once per event-loop iteration."""

    __slots__ = ("due", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.due: list[_CoalescingTransport] = []

    def add(self, transport: _CoalescingTransport) -> None:
        if not self.due:
            self.loop.call_soon(self.run)
        self.due.append(transport)

    def run(self) -> None:
        due, self.due = self.due, []
        for transport in due:
            transport.flush()


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher] = weakref.WeakKeyDictionary()


class _CoalescingTransport:
    """The connection's transport, coalescing fastlane frames within one loop iteration.

    Fastlane frames are held until the end of the event-loop iteration and leave in one
    write, so broadcasts sent together cost one syscall per subscriber, not one each (the
    send syscall is most of a delivery's cost). Every other write (uvicorn's sends, pongs,
    close frames) and `close` write the held frames first, so the order on the wire is the
    order of the calls; past `_MAX_HELD` bytes they are written at once, so the transport's
    own flow control (pause at its high-water mark) still sees them.
    """

    __slots__ = ("_flusher", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport, flusher: _Flusher) -> None:
        self._transport = transport
        self._flusher = flusher
        # None: no frame in this iteration (not registered with the flusher); else the
        # bytes held, maybe b"". Bytes or a bytearray, not a list: a GC-tracked container
        # per socket and iteration would survive young-generation collections and bring the
        # full ones sooner. A bytearray handed to the transport is never touched again.
        self._held: bytes | bytearray | None = None

    def hold(self, frame: bytes) -> None:
        held = self._held
        if held is None:
            self._flusher.add(self)
            held = frame
        elif not held:
            held = frame
        elif isinstance(held, bytes):
            # From the second frame on, append in place (a bytes += would copy it all again).
            held = bytearray(held)
            held += frame
        else:
            held += frame
        self._held = held
        if len(held) >= _MAX_HELD:
            self._write_held()

    def _write_held(self) -> None:
        held = self._held
        if held:
            self._held = b""
            self._transport.write(held)

    def flush(self) -> None:
        if not self._transport.is_closing():
            self._write_held()
        self._held = None

    def write(self, data: bytes) -> None:
        if self._held:  # checked here: every uvicorn send comes through this write
            self._write_held()
        self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._write_held()
        self._transport.close()

    def abort(self) -> None:
        if self._held:
            self._held = b""
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class FastlaneProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol plus the ``wsroute.fastlane`` scope extension."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Same settings as uvicorn's, minus compression (see the module docstring).
        self.conn = ServerProtocol(extensions=[], max_size=self.config.ws_max_size, logger=self.conn.logger)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """uvicorn's, with the transport wrapped to coalesce fastlane frames."""
        super().connection_made(transport)
        loop = self.loop
        flusher = _flushers.get(loop)
        if flusher is None:
            flusher = _flushers[loop] = _Flusher(loop)
        self.transport = _CoalescingTransport(self.transport, flusher)  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        """Build the scope as uvicorn does, then offer the extension (before the app runs)."""
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = {
                "write": self.fastlane_write,
                "abort": self.fastlane_abort,
            }

    async def send(self, message: Any) -> None:
        """uvicorn's send; after a complete denial response, mark the handshake done.

        Stock websockets-sansio never does, and logs "ASGI callable returned without
        completing handshake." at ERROR for every refused handshake (Kludex/uvicorn#3138):
        on a server that refuses attackers all day, that would page someone.
        """
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            self.handshake_complete = True

    def fastlane_abort(self) -> None:
        """Drop the connection now (an evicted client that never reads).

        Through ASGI the app cannot get rid of such a client: its close frame waits behind
        a full TCP window, and uvicorn's ``transport.close()`` waits for unread data that
        will never be read, holding the socket open (and graceful shutdown up).
        """
        self.transport.abort()

    def fastlane_write(self, frame: bytes) -> bool:
        """Take pre-encoded frame bytes (written with any others at the end of this loop
        iteration), or return False to make the caller queue them."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            or self.transport.is_closing()
        ):
            return False
        self.transport.hold(frame)  # type: ignore[attr-defined]
        return True
