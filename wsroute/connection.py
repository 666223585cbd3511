"""One dedicated WebSocket connection: handshake, accept or deny, receive loop, leave.

The ASGI task of the connection runs the receive loop and calls message handlers inline,
one message at a time and in order. A join body runs beside the receive loop (a
send-only join handler still learns of a disconnect); messages that arrive meanwhile wait
until it returns. Whatever ends the connection — client close, network drop, server
close, handler error, eviction as a slow consumer, shutdown, cancellation — the session's
leave runs exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import orjson
from starlette.types import Message, Receive, Scope, Send

from wsroute import status
from wsroute.broker import Broker
from wsroute.guards import Reject
from wsroute.outbox import Outbox
from wsroute.routes import RouteTable
from wsroute.session import Session
from wsroute.settings import Settings
from wsroute.status import WebSocketStatus

logger = logging.getLogger("wsroute")

_DEFAULT_PORTS = {"http": "80", "ws": "80", "https": "443", "wss": "443"}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def origin_allowed(scope: Scope, allowed: Iterable[str]) -> bool:
    """Same-origin, listed, or no Origin at all (a non-browser client): allowed.

    Same origin means the Origin's host:port equals the request's Host header.
    """
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    allowed = tuple(allowed)
    if "*" in allowed or origin in allowed:
        return True
    host = _header(scope, b"host")
    if not host:
        return False
    parts = urlsplit(origin)
    netloc = parts.netloc
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default and netloc.endswith(":" + default):
        netloc = netloc[: -len(default) - 1]
    host = host.strip().lower()
    for port in ("80", "443"):
        if host.endswith(":" + port) and default == port:
            host = host[: -len(port) - 1]
    return bool(netloc) and netloc == host


def status_of(event: Message) -> WebSocketStatus:
    """The leave status for a ``websocket.disconnect`` event.

    uvicorn reports a dropped TCP connection as 1005 with no reason key; a real close
    frame always carries one. The drop is reported as 1006, as the spec says.
    """
    code = event.get("code", status.NO_STATUS)
    if code == status.NO_STATUS and "reason" not in event:
        code = status.ABNORMAL
    return WebSocketStatus(code, event.get("reason") or "")


async def deny(scope: Scope, send: Send, reject: Reject) -> None:
    """Refuse the handshake with the real HTTP status and a JSON body.

    Uses the WebSocket Denial Response extension when the server offers it; otherwise
    closes before accepting, which servers report as 403.
    """
    if "websocket.http.response" in scope.get("extensions", {}):
        body = orjson.dumps({"detail": reject.detail})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        for key, value in (reject.headers or {}).items():
            headers.append((key.lower().encode("latin-1"), value.encode("latin-1")))
        await send(
            {"type": "websocket.http.response.start", "status": reject.status_code, "headers": headers}
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": status.POLICY_VIOLATION})


class Connection:
    """A dedicated (not multiplexed) WebSocket connection served by one session."""

    def __init__(
        self,
        table: RouteTable,
        settings: Settings,
        broker: Broker,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        self.table = table
        self.settings = settings
        self.broker = broker
        self.scope = scope
        self.receive = receive
        self.send = send
        self.outbox = Outbox(
            send,
            max_messages=settings.max_queue,
            max_bytes=settings.max_queue_bytes,
            policy=settings.slow_consumer,
            on_overflow=self._evict,
        )
        self._task: asyncio.Task[Any] | None = None
        self._evicted = False

    async def run(self) -> None:
        """Serve the connection from ``websocket.connect`` to the end."""
        first = await self.receive()
        if first["type"] != "websocket.connect":
            return
        if not origin_allowed(self.scope, self.settings.allowed_origins):
            await deny(self.scope, self.send, Reject(403, "cross-origin WebSocket not allowed"))
            return
        session = Session(
            table=self.table,
            settings=self.settings,
            broker=self.broker,
            scope=self.scope,
            outbox=self.outbox,
            closer=self._close,
        )
        try:
            await session.handshake()
        except Reject as reject:
            await session.ctx.exit_stack.aclose()
            await deny(self.scope, self.send, reject)
            return
        except Exception:
            logger.exception("exception during the WebSocket handshake of %s", session.route_path)
            await session.ctx.exit_stack.aclose()
            await deny(self.scope, self.send, Reject(500, "Internal Server Error"))
            return
        await self.send({"type": "websocket.accept"})
        await self.serve(session)

    async def serve(self, session: Session) -> None:
        """Run an accepted session to its end; leave runs exactly once."""
        self._task = asyncio.current_task()
        end = WebSocketStatus(status.ABNORMAL, "")
        cancelled = False
        try:
            await session.subscribe()
            end = await self._loop(session)
        except asyncio.CancelledError:
            if self._evicted and self._task is not None:
                self._task.uncancel()
                end = WebSocketStatus(status.POLICY_VIOLATION, "slow consumer")
                await self._send_close(status.POLICY_VIOLATION, "slow consumer", timeout=1.0)
            else:
                cancelled = True
                end = WebSocketStatus(status.GOING_AWAY, "server shutting down")
        except Exception:
            logger.exception("WebSocket connection to %s failed", session.route_path)
            end = WebSocketStatus(status.INTERNAL_ERROR, "Internal Error")
            await self._send_close(status.INTERNAL_ERROR, "Internal Error", timeout=1.0)
        finally:
            self._task = None
            self.outbox.abort()
            # Shielded: a second cancellation must not cut leave short.
            finish = asyncio.ensure_future(session.finish(end))
            try:
                await asyncio.shield(finish)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError

    async def _loop(self, session: Session) -> WebSocketStatus:
        receive = self.receive
        pending: deque[Message] = deque()
        upcoming: asyncio.Future[Message] | None = None
        if session.join_handler is not None:
            join = asyncio.ensure_future(session.run_join())
            try:
                while not join.done():
                    if upcoming is None and len(pending) < self.settings.max_queue:
                        upcoming = asyncio.ensure_future(receive())
                    waiting: set[asyncio.Future[Any]] = {join}
                    if upcoming is not None:
                        waiting.add(upcoming)
                    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    if upcoming is not None and upcoming.done():
                        event = upcoming.result()
                        upcoming = None
                        if event["type"] == "websocket.disconnect":
                            join.cancel()
                            await asyncio.wait({join})
                            return status_of(event)
                        pending.append(event)
            except asyncio.CancelledError:
                join.cancel()
                if upcoming is not None:
                    upcoming.cancel()
                raise
            if session.close_status is not None:
                if upcoming is not None:
                    upcoming.cancel()
                return session.close_status
        rate = self.settings.rate_limit
        loop = asyncio.get_running_loop()
        tokens, last = (float(rate[0]), loop.time()) if rate else (0.0, 0.0)
        while True:
            if pending:
                event = pending.popleft()
            elif upcoming is not None:
                event = await upcoming
                upcoming = None
            else:
                event = await receive()
            kind = event["type"]
            if kind == "websocket.receive":
                if rate is not None:
                    now = loop.time()
                    tokens = min(float(rate[0]), tokens + (now - last) * rate[0] / rate[1])
                    last = now
                    if tokens < 1.0:
                        await session.close(status.POLICY_VIOLATION, "rate limit exceeded")
                        return session.close_status or WebSocketStatus(status.POLICY_VIOLATION)
                    tokens -= 1.0
                text = event.get("text")
                await session.on_message(text, event.get("bytes") if text is None else None)
                if session.close_status is not None:
                    return session.close_status
            elif kind == "websocket.disconnect":
                return status_of(event)

    async def _close(self, code: int, reason: str) -> None:
        """Server-side close: flush what is queued (bounded in time), then the close frame."""
        await self.outbox.drain(self.settings.close_timeout)
        self.outbox.abort()
        await self._send_close(code, reason, timeout=self.settings.close_timeout)

    async def _send_close(self, code: int, reason: str, *, timeout: float) -> None:
        try:
            # The server's send waits while the client's TCP window is full; a client
            # that never reads must not hold the close (or leave) forever.
            await asyncio.wait_for(
                self.send({"type": "websocket.close", "code": code, "reason": reason}), timeout
            )
        except (TimeoutError, Exception):
            logger.debug("could not send close %s to the client", code, exc_info=True)

    def _evict(self) -> None:
        """The outgoing queue overflowed under the disconnect policy: end the connection (1008)."""
        if self._task is not None and not self._evicted:
            self._evicted = True
            self._task.cancel()
