"""A WebSocket connection's lifecycle: handshake, accept or deny, receive loop, the end.

Each connection runs in the task the server made for it (`run` is awaited there). It runs the
receive loop and calls message handlers inline, one message at a time and in order. A join
body runs beside the receive loop, in a task of its own once it waits (a send-only join
handler still learns of a disconnect); messages for its session wait until it returns. Whatever ends the
connection — client close, network drop, server close, handler error, eviction as a slow
consumer, shutdown, cancellation — every session's leave runs exactly once.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from wsroute import status
from wsroute.broker import Broker
from wsroute.eager import start_eagerly
from wsroute.fastlane_extension import fast_abort, fast_writer
from wsroute.guards import Reject
from wsroute.lifecycle import ConnectionState, SessionState, check_connection_move
from wsroute.origins import origin_allowed
from wsroute.outbox import Outbox
from wsroute.routes import RouteTable
from wsroute.session import Framer, Session
from wsroute.settings import Settings
from wsroute.status import WebSocketStatus, clip_reason

logger = logging.getLogger("wsroute")

def status_of(event: Message) -> WebSocketStatus:
    """The leave status for a ``websocket.disconnect`` event.

    uvicorn reports a dropped TCP connection as 1005 with no reason key; a real close
    frame always carries one. The drop is reported as 1006, as docs/join-leave.md says.
    """
    # int(): servers may pass their close-code enum; handlers get a plain int.
    code = int(event.get("code", status.NO_STATUS))
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
        # One loop turn before returning: uvicorn 0.52 (the lowest we support; 0.55 does not)
        # marks a refused handshake done only when it sees the connection close, and logs an
        # ERROR for an app that returns sooner (uvicorn#3138).
        await asyncio.sleep(0)
    else:
        await send({"type": "websocket.close", "code": status.POLICY_VIOLATION})


# Module-level names: the receive loop reads them without an attribute lookup per message.
_CONNECTING = ConnectionState.CONNECTING
_HANDSHAKE = ConnectionState.HANDSHAKE
_DENIED = ConnectionState.DENIED
_OPEN = ConnectionState.OPEN
_CLOSING = ConnectionState.CLOSING
_EVICTED = ConnectionState.EVICTED
_ENDED = ConnectionState.ENDED
_SESSION_OPEN = SessionState.OPEN

# How a connection ends unless something says otherwise (shared: idle sockets hold it).
_DROPPED = WebSocketStatus(status.ABNORMAL, "")


class BaseConnection:
    """One physical WebSocket: accept or deny, the receive loop, the outbox, and the end.

    Subclasses decide what a received frame means: `Connection` gives every message to
    its one session; the multiplexed connection parses topics and control actions.
    """

    # Slots: thousands of these live at once, one per idle socket.
    __slots__ = (
        "_close_sent",
        "_joins",
        "_task",
        "broker",
        "close_status",
        "direct",
        "outbox",
        "receive",
        "scope",
        "send",
        "settings",
        "state",
        "subprotocol",
        "table",
    )  # fmt: skip

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
            owner=self,
            fast=fast_writer(scope),
        )
        self.state = _CONNECTING
        # How the server closed it (state CLOSING and on); once ENDED, how it ended,
        # whoever closed it. None until then.
        self.close_status: WebSocketStatus | None = None
        # Done once a server-side close has sent its close frame (or given up); None before.
        self._close_sent: asyncio.Future[None] | None = None
        self.subprotocol: str | None = None
        # The one session that takes every message (a dedicated connection), called
        # without the `on_frame` hop while no join body is running.
        self.direct: Session | None = None
        # The server's task running the receive loop (state OPEN to EVICTED): eviction
        # cancels it, and `run` takes that cancellation back (`uncancel`).
        self._task: asyncio.Task[Any] | None = None
        # Join bodies running beside the receive loop (most sockets never have one).
        self._joins: dict[Session, asyncio.Task[None]] | None = None

    def _to(self, state: ConnectionState) -> None:
        """Move to `state`: the one place the socket's state changes."""
        if __debug__:
            check_connection_move(self.state, state)
        self.state = state

    def new_session(self, scope: Scope, frame: Framer | None = None) -> Session:
        """A session on this socket's outbox."""
        return Session(
            table=self.table,
            settings=self.settings,
            broker=self.broker,
            scope=scope,
            outbox=self.outbox,
            socket=self,
            frame=frame,
        )

    async def run(self) -> None:
        """Serve the connection from ``websocket.connect`` to the end; every session's leave
        runs exactly once."""
        if not await self._handshake():
            return
        # The receive loop lives here rather than in coroutines of its own: each would hold
        # a frame per idle socket, and be resumed through on every message.
        self._task = asyncio.current_task()
        end = _DROPPED
        # The caller's own cancellation, re-raised as is: the server (or a test client's
        # cancel scope) recognises it by identity and message.
        cancellation: asyncio.CancelledError | None = None
        try:
            await self.start()
            receive = self.receive
            direct = self.direct
            # A multiplexed socket counts each frame for the topic it is addressed to.
            bucket = None if direct is None else direct.bucket
            while True:
                event = await receive()
                kind = event["type"]
                if kind == "websocket.receive":
                    if bucket is not None and not bucket.take():
                        # The message is dropped; the handler for RateLimited decides.
                        assert direct is not None  # only a dedicated socket has a bucket here
                        await direct.rate_limited(event.get("text"), event.get("bytes"))
                        if self.state >= _CLOSING:
                            end = await self._ended_by_server()
                            break
                        continue
                    text = event.get("text")
                    data = event.get("bytes") if text is None else None
                    if direct is not None and direct.state is _SESSION_OPEN:
                        # The handler is awaited right here: no frame of ours per message.
                        try:
                            await direct.message_call(text, data)
                        except Exception as exc:
                            await direct.recover(exc, text, data)
                    else:
                        # Looked up per message (multiplexed sockets only): a bound method
                        # kept in this frame would cost every idle socket 64 bytes.
                        await self.on_frame(text, data)
                    if self.state >= _CLOSING:
                        end = await self._ended_by_server()
                        break
                elif kind == "websocket.disconnect":
                    # A client that drops while the server's close is flushing (it never
                    # read) ended by that close: its leave reports the server's code.
                    if self.state is _CLOSING and self.close_status is not None:
                        end = self.close_status
                    else:
                        end = status_of(event)
                    break
        except asyncio.CancelledError as exc:
            # Ours only if it was the one cancellation (`evict`, `_give_up`): one more is
            # the server's (shutdown), and wins.
            if self.state is _EVICTED and self._task is not None and self._task.uncancel() == 0:
                if self.close_status is not None:
                    # A server close that could not reach its client (`_give_up`): the
                    # leaves report its code; the frame was tried already.
                    end = self.close_status
                else:
                    end = status.SLOW_CONSUMER
                    await self._close_evicted()
            else:
                cancellation = exc
                end = WebSocketStatus(status.GOING_AWAY, "server shutting down")
                # Say so to the client: a server that cancels the app (hypercorn, after its
                # graceful timeout) would otherwise close the socket with 1011 on its own.
                await self._send_close(end.code, end.reason, timeout=1.0)
        except Exception:
            logger.exception("WebSocket connection to %s failed", self.scope["path"])
            end = WebSocketStatus(status.INTERNAL_ERROR, "Internal Error")
            await self._send_close(status.INTERNAL_ERROR, "Internal Error", timeout=1.0)
        finally:
            self._task = None
            self._to(_ENDED)
            self.close_status = end  # for a topic whose guards finish after this
            self.outbox.abort()
            # Shielded: a cancellation must not cut the leave handlers short. Started in
            # this step: most teardowns never wait, and need no task (see wsroute.eager).
            finishing = start_eagerly(self._finish_all(end))
            if finishing is not None:
                try:
                    await asyncio.shield(finishing)
                except asyncio.CancelledError as exc:
                    cancellation = cancellation or exc
        if cancellation is not None:
            raise cancellation

    async def _ended_by_server(self) -> WebSocketStatus:
        """How the loop ends once a handler saw the server end the socket: a close begun
        meanwhile, once its frame is out; or an eviction (or a close that gave up) whose
        cancellation the handler caught and did not re-raise, ended as if it had not."""
        if self.state is _EVICTED:
            # A cancellation still pending (an eviction from this task's own send) arrives
            # here; one a handler swallowed is raised again. Either way `run` ends it.
            await asyncio.sleep(0)
            raise asyncio.CancelledError
        await self._close_frame_sent()
        return self.close_status or _DROPPED

    async def _close_frame_sent(self) -> None:
        """Wait for a server-side close begun in another task (`Broker.disconnect` called
        from this socket's own handler) to send its close frame: ending the socket sooner
        cuts its flush short, and the client never gets the code."""
        sent = self._close_sent
        if sent is not None and not sent.done():
            await asyncio.wait({sent})

    async def _close_evicted(self) -> None:
        await self._close_or_drop(status.SLOW_CONSUMER.code, status.SLOW_CONSUMER.reason, timeout=1.0)

    async def _close_or_drop(self, code: int, reason: str, *, timeout: float) -> bool:
        """Send the close frame within `timeout`, or drop the client where the server lets
        us (the fastlane does); False when neither could be done. A close frame stuck
        behind a client's full TCP window would otherwise hold the connection: stock
        uvicorn waits for that client to read, whatever its ping timeout."""
        if await self._send_close(code, reason, timeout=timeout):
            return True
        abort = fast_abort(self.scope)
        if abort is None:
            return False
        abort()
        return True

    async def _handshake(self) -> bool:
        """Accept the socket or deny it; True when accepted."""
        first = await self.receive()
        if first["type"] != "websocket.connect":
            self._to(_DENIED)
            return False
        self._to(_HANDSHAKE)
        if not origin_allowed(self.scope, self.settings.allowed_origins):
            self._to(_DENIED)
            await deny(self.scope, self.send, Reject(403, "cross-origin WebSocket not allowed"))
            return False
        try:
            await self.open()
        except Reject as reject:
            self._to(_DENIED)
            await deny(self.scope, self.send, reject)
            return False
        except Exception:
            self._to(_DENIED)
            logger.exception("exception during the WebSocket handshake of %s", self.scope["path"])
            await deny(self.scope, self.send, Reject(500, "Internal Server Error"))
            return False
        try:
            if self.subprotocol is None:
                await self.send({"type": "websocket.accept"})
            else:
                await self.send({"type": "websocket.accept", "subprotocol": self.subprotocol})
        except Exception as exc:
            # The client left while the guards ran (uvicorn raises ClientDisconnected). The
            # handshake's sessions were accepted: they end as a dropped connection does, so
            # that their dependencies are torn down and their client ids let go.
            logger.debug("the client of %s left before the accept: %r", self.scope["path"], exc)
            self._to(_DENIED)
            for session in self.accepted_sessions():
                await session.finish(_DROPPED)
            return False
        self._to(_OPEN)
        return True

    def accepted_sessions(self) -> list[Session]:
        """The sessions the handshake accepted (before `start` subscribes them)."""
        return self.sessions()

    async def open(self) -> None:
        """Decide the handshake: raise `Reject` to refuse it."""
        raise NotImplementedError

    async def start(self) -> None:
        """After accept: subscribe the first session and start its join."""
        raise NotImplementedError

    async def on_frame(self, text: str | None, data: bytes | None) -> None:
        """Handle one received message."""
        raise NotImplementedError

    def sessions(self) -> list[Session]:
        """Every live session of this socket."""
        raise NotImplementedError

    async def close_session(self, session: Session, code: int, reason: str) -> bool:
        """Server-side close of one session (`Channel.close` and the control calls); False
        when it was closing or closed already."""
        raise NotImplementedError

    # --- sessions: join beside the receive loop, then messages in order -----------------

    def start_join(self, session: Session) -> None:
        """Run the session's join body beside the receive loop; its messages wait until it
        returns. Started in this step, in a context of its own: a join that never waits
        (most: it returns a `PresenceInfo`, or sends a greeting) needs no task."""
        if not session.start_join():
            return
        running = start_eagerly(self._join(session), contextvars.copy_context(), "wsroute join")
        if running is not None:
            if self._joins is None:
                self._joins = {}
            self._joins[session] = running

    async def _join(self, session: Session) -> None:
        try:
            await session.join_then_drain()
        except Exception:
            # The handler's own errors are handled inside; this is wsroute's, and must not
            # end the socket's other topics (nor, run eagerly, the receive loop).
            logger.exception("the join of %s failed", session.topic)
        finally:
            if self._joins is not None:
                self._joins.pop(session, None)

    async def finish_session(self, session: Session, end: WebSocketStatus) -> None:
        """End one session: stop its join body, then unsubscribe and leave (once)."""
        # get, not pop: a second caller (the socket's teardown after this one was cancelled
        # here) must also wait for the join to unwind before the leave runs.
        join = None if self._joins is None else self._joins.get(session)
        if join is not None and not join.done() and join is not asyncio.current_task():
            join.cancel()
            await asyncio.wait({join})
        await session.finish(end)

    async def _finish_all(self, end: WebSocketStatus) -> None:
        for session in self.sessions():
            await self.finish_session(session, end)

    # --- closing ------------------------------------------------------------------------

    async def close_socket(self, code: int, reason: str) -> bool:
        """Server-side close: flush what is queued (bounded in time), then the close frame
        (its reason shortened to fit). False when the socket was closing or closed already.

        Nothing is awaited before the socket is marked closing, so a caller that runs the
        first step alone (`Clients`) knows at once whether this call closes it."""
        if self.state is not _OPEN:
            return False
        reason = clip_reason(reason)
        self.close_status = WebSocketStatus(code, reason)
        self._to(_CLOSING)
        sent = self._close_sent = asyncio.get_running_loop().create_future()
        try:
            await self.outbox.drain(self.settings.close_timeout)
            self.outbox.abort()
            if not await self._close_or_drop(code, reason, timeout=self.settings.close_timeout):
                self._give_up()
        finally:
            sent.set_result(None)
        return True

    def _give_up(self) -> None:
        """The close frame could not be sent and the server cannot drop the client (stock
        uvicorn waits for a client that never reads, and never reports it gone): end the
        connection here, so that its leaves run now, with the close's code, instead of
        never. Its TCP connection is the server's to drop."""
        task = self._task
        if task is not None and task is not asyncio.current_task() and self.state is _CLOSING:
            self._to(_EVICTED)
            task.cancel()

    async def _send_close(self, code: int, reason: str, *, timeout: float) -> bool:
        """Send the close frame within `timeout`; False when it could not be sent."""
        try:
            # The server's send waits while the client's TCP window is full; a client
            # that never reads must not hold the close (or leave) forever.
            await asyncio.wait_for(
                self.send({"type": "websocket.close", "code": code, "reason": reason}), timeout
            )
        except Exception:
            logger.debug("could not send close %s to the client", code, exc_info=True)
            return False
        return True

    def evict(self) -> None:
        """The outgoing queue overflowed under the disconnect policy: end the socket (1008).

        A socket the server is closing already keeps its close: the overflow dropped what
        was queued, the close frame goes next with the code the server chose, and the
        leaves report that code, not 1008."""
        if self._task is not None and self.state is _OPEN:
            self._to(_EVICTED)
            self._task.cancel()


class Connection(BaseConnection):
    """A dedicated (not multiplexed) WebSocket: one session, the connect URL's topic."""

    __slots__ = ("session",)
    session: Session

    async def open(self) -> None:
        self.session = self.direct = self.new_session(self.scope)
        await self.session.handshake()

    async def start(self) -> None:
        await self.session.subscribe()
        self.start_join(self.session)

    async def on_frame(self, text: str | None, data: bytes | None) -> None:
        await self.session.receive(text, data)

    def sessions(self) -> list[Session]:
        return [self.session]

    async def close_session(self, session: Session, code: int, reason: str) -> bool:
        return await self.close_socket(code, reason)

