"""The fastlane ASGI scope extension as the app sees it: frames encoded once, written straight
to the transport when the server offers it (`wsroute.fastlane` is the server side).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import Message, Scope
from websockets.frames import Frame, Opcode

EXTENSION = "wsroute.fastlane"
"""Name of the ASGI scope extension: ``{"write": write(frame: bytes) -> bool, "abort": ...}``."""

_FRAME_KEY = "wsroute.frame"

FastWrite = Callable[[Message], bool]
"""Write an event's frame straight to the transport; False when it must be queued instead."""


def frame_bytes(event: Message) -> bytes:
    """The unmasked server frame of a ``websocket.send`` event, built once and kept on the event.

    The event of a broadcast is shared by every subscriber, so the first one to need the
    frame encodes it and the others reuse it.
    """
    frame: bytes | None = event.get(_FRAME_KEY)
    if frame is None:
        text = event.get("text")
        if text is not None:
            frame = Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
        else:
            frame = Frame(Opcode.BINARY, event["bytes"]).serialize(mask=False)
        event[_FRAME_KEY] = frame
    return frame


def fast_abort(scope: Scope) -> Callable[[], None] | None:
    """Drop the connection at once, when the server offers it (the fastlane does)."""
    extension = scope.get("extensions", {}).get(EXTENSION)
    abort: Callable[[], None] | None = extension.get("abort") if extension else None
    return abort


def fast_writer(scope: Scope) -> FastWrite | None:
    """The fastlane writer of a connection, when its server offers the extension."""
    extension = scope.get("extensions", {}).get(EXTENSION)
    if not extension:
        return None
    write: Callable[[bytes], bool] = extension["write"]

    def fast_write(event: Message) -> bool:
        return write(frame_bytes(event))

    return fast_write
