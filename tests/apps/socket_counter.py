"""ASGI wrapper counting a server's physical WebSocket connections (for the browser tests' apps)."""

from __future__ import annotations

import itertools
import os
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class SocketCounter:
    """ASGI wrapper counting physical WebSocket connections, from transport events only.

    A connection counts as open from the app's ``websocket.accept`` until the first of: the
    client's ``websocket.disconnect``, the app's ``websocket.close``, or the app returning.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.open: dict[int, dict[str, Any]] = {}
        self.accepted = 0
        self._ids = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        conn_id = next(self._ids)

        def end() -> None:
            self.open.pop(conn_id, None)

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                end()
            return message

        async def counting_send(message: Message) -> None:
            if message["type"] == "websocket.accept":
                self.accepted += 1
                self.open[conn_id] = {
                    "path": scope["path"],
                    "query": scope.get("query_string", b"").decode("latin-1"),
                    "subprotocol": message.get("subprotocol"),
                }
            elif message["type"] == "websocket.close":
                end()
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            end()

    def stats(self) -> dict[str, Any]:
        """What the apps' ``/stats`` route reports: the process, open sockets, accepts."""
        return {
            "pid": os.getpid(),
            "open": len(self.open),
            "accepted": self.accepted,
            "sockets": list(self.open.values()),
        }
