"""Fastlane: an opt-in uvicorn WebSocket protocol that writes a broadcast's frame once-encoded.

Through plain ASGI every subscriber of a broadcast costs one ``websocket.send``, and the
server frames the same payload again for each. With this protocol a broadcast is framed
**once** and the same bytes are written straight to every idle subscriber's transport:

```python
uvicorn app:app --ws wsroute.fastlane:FastlaneProtocol
```

It is uvicorn's own ``websockets-sansio`` protocol with one addition: the ASGI extension
``wsroute.fastlane`` in the connection scope, ``{"write": write(frame: bytes) -> bool}``.
`write` puts pre-encoded frame bytes on the transport and returns True, or returns False
when the connection cannot take them right now (not open, closing, transport paused by
backpressure) — wsroute then takes the normal queued ASGI path, so correctness never
depends on the fast path and the slow-consumer policy still holds. Handshake, receive,
close and ping/pong stay uvicorn's.

The extension also carries ``abort()``: a client evicted as a slow consumer whose close
frame cannot be written is dropped at once instead of holding its socket open.

The protocol never negotiates permessage-deflate: a compressed frame depends on each
connection's compression context and cannot be shared between sockets.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State
from websockets.server import ServerProtocol

from wsroute.frames import EXTENSION

__all__ = ["EXTENSION", "FastlaneProtocol"]


class FastlaneProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol plus the ``wsroute.fastlane`` scope extension."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Same settings as uvicorn's, minus compression (see the module docstring).
        self.conn = ServerProtocol(extensions=[], max_size=self.config.ws_max_size, logger=self.conn.logger)

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
        """Write pre-encoded frame bytes now, or return False to make the caller queue them."""
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
        self.transport.write(frame)
        return True
