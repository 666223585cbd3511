"""One client on one topic: handshake decision, event dispatch, errors, leave exactly once.

A `Session` is a dedicated WebSocket connection, or one topic of a multiplexed socket
(a virtual connection). Either way it has its own handshake request, local cache,
`Channel` and subscription, so handlers cannot tell the two apart. The socket that owns
it does the I/O: it feeds messages in and provides the outbox and the way to close.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any, Protocol

import orjson
from pydantic import JsonValue
from starlette.exceptions import HTTPException, WebSocketException
from starlette.types import Message, Scope

from wsroute import status
from wsroute.broker import Broker
from wsroute.broker.broker import new_subscriber_id
from wsroute.channel import Channel, raise_when_awaited
from wsroute.eager import start_eagerly
from wsroute.errors import (
    BrokerUnavailable,
    ChannelClosed,
    MessageError,
    MessageTooLarge,
    RateLimited,
    Unhandled,
)
from wsroute.guards import Forward, HandshakeRequest, Reject, forget_parsed
from wsroute.history import Positions, Publication, StreamPosition, TopicOptions, recovery
from wsroute.injection import Context, EventState, Plan
from wsroute.lifecycle import ConnectionState, SessionState, check_session_move
from wsroute.messages import bytes_event, encode, text_event
from wsroute.outbox import Outbox
from wsroute.presence import Attendance, Member, PresenceInfo, info_json
from wsroute.ratelimit import TokenBucket
from wsroute.routes import Handler, RouteTable, route_path
from wsroute.settings import Settings
from wsroute.status import WebSocketStatus, clip_reason

logger = logging.getLogger("wsroute")

# RFC 6455 §7.4: codes a server may put in a close frame (1004-1006 and 1015 are reserved).
_SERVER_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)})

_NOBODY = PresenceInfo()

Framer = Callable[[Message], Message]


class Socket(Protocol):
    """The physical socket a session belongs to, as server-side control sees it."""

    async def close_socket(self, code: int, reason: str) -> bool:
        """Close the whole socket (every topic of a multiplexed one) with `code` and `reason`;
        False when it was closing or closed already. It marks the socket closing before it
        first waits."""

    async def close_session(self, session: Session, code: int, reason: str) -> bool:
        """Close `session` with `code` and `reason`: the socket of a dedicated connection,
        the topic of a multiplexed one (the socket stays open); False when that was closing
        or closed already. Like `close_socket`, it decides before it first waits."""

    @property
    def state(self) -> ConnectionState:
        """Where the socket is in its life: past OPEN, every session on it is closing too."""


class MetaFrames(Protocol):
    """How a subscription with per-frame metadata (multiplex ``meta``) frames what carries
    some: the answer to a request, a publication with its stream position."""

    def ok(self, request_id: str, event: Message | None) -> Message:
        """The reply carrying the handler's return value, encoded (None: an empty text reply)."""

    def error(self, request_id: str, code: int, reason: str) -> Message:
        """The error reply: the close code and reason the exception would have closed with."""

    def publication(self, event: Message, offset: int, epoch: str | None) -> Message:
        """A publication with its offset (and its epoch when it changed)."""

    def presence(self, kind: str, body: str) -> Message:
        """A presence frame: ``kind`` is ``state`` or ``diff``, `body` its JSON."""


def check_size(limit: int, text: str | None, data: bytes | None) -> None:
    """Raise `MessageTooLarge` for a message over `limit` bytes (text counted as UTF-8)."""
    if text is not None:
        # len(text) <= UTF-8 size <= 4 * len(text): encode only when in doubt.
        size = len(text)
        if size * 4 > limit and (size > limit or len(text.encode()) > limit):
            raise MessageTooLarge(f"message too big: over {limit} bytes")
    elif data is not None and len(data) > limit:
        raise MessageTooLarge(f"message too big: {len(data)} bytes, limit {limit}")


# Module-level names: the per-message and per-delivery checks read them without an
# attribute lookup on the enum class.
_HANDSHAKE = SessionState.HANDSHAKE
_REFUSED = SessionState.REFUSED
_ACCEPTED = SessionState.ACCEPTED
_OPEN = SessionState.OPEN
_JOINING = SessionState.JOINING
_CLOSING = SessionState.CLOSING
_LEAVING = SessionState.LEAVING
_LEFT = SessionState.LEFT

_FastCall = tuple[
    Callable[..., Awaitable[Any]], tuple[Any, ...], tuple[Any, ...], dict[str, Any], str | None, Any, int
]
# Shared by every fast call with no parameter given by name: only ever unpacked or copied.
_NO_KWARGS: dict[str, Any] = {}


def _by_name(plan: Plan, kwargs: dict[str, Any]) -> Awaitable[Any]:
    """Call the handler with `kwargs` by name, but its positional-only parameters by position."""
    if not plan.positional_only:
        return plan.fn(**kwargs)
    first = tuple(kwargs.pop(name) for name in plan.positional[: plan.positional_only])
    return plan.fn(*first, **kwargs)


class Session(Context):
    """A (possibly virtual) connection: what handlers see through `Channel`."""

    # Slots: a server holds one of these per open connection (and per multiplexed topic).
    __slots__ = (
        "_fast",
        "_first_handler",
        "_first_values",
        "_forwarded",
        "_frame",
        "_held",
        "_leaving",
        "_more_values",
        "_pending",
        "_presence",
        "_subscriber_id",
        "bucket",
        "close_status",
        "join_handler",
        "message_handler",
        "meta",
        "outbox",
        "positions",
        "route_path",
        "settings",
        "socket",
        "state",
        "table",
        "topic",
    )

    def __init__(
        self,
        *,
        table: RouteTable,
        settings: Settings,
        broker: Broker,
        scope: Scope,
        outbox: Outbox,
        socket: Socket,
        frame: Framer | None = None,
    ) -> None:
        self.table = table
        # The physical socket: closes this session (`close`), is closed whole by
        # `Broker.disconnect`, asked to subscribe by `Broker.subscribe`; None once left.
        self.socket: Socket | None = socket
        self.settings = settings
        self.outbox = outbox
        self._frame = frame
        super().__init__(HandshakeRequest(scope), Channel(self), broker)
        self.route_path = route_path(scope)
        self.topic = scope["path"]
        self.join_handler: Handler | None = None
        self.message_handler: Handler | None = None
        self.state = _HANDSHAKE
        # How the server closed it (state CLOSING and on); None until then.
        self.close_status: WebSocketStatus | None = None
        # The rate limit's state, made at accept; None without a limit. The socket reads it
        # (once for a dedicated one, per frame for a topic) before giving a message here.
        self.bucket: TokenBucket | None = None
        # Connection-level values per handler, kept for the connection's life. Most
        # connections prepare one handler: it gets two slots, not a dict (~200 bytes).
        self._first_handler: Handler | None = None
        self._first_values: dict[str, Any] | None = None
        self._more_values: dict[Handler, dict[str, Any]] | None = None
        self._forwarded: set[Handler] | None = None  # handlers whose guards forwarded
        # How to call the chosen message handler when it has no event-scoped dependencies:
        # (fn, values before the message, values after it, values by name, the message's
        # name when it is given by name, decoder, size limit). `()` until the first
        # message builds it: a socket that never sends keeps none of these objects.
        self._fast: _FastCall | tuple[()] | None = None
        self._subscriber_id: str | None = None
        # The leave's task, once started: later callers of `finish` wait for it.
        self._leaving: asyncio.Future[None] | None = None
        # Messages that arrived while the join body runs (only in state JOINING), each with
        # its request id (None for a plain message).
        self._pending: deque[tuple[str | None, bytes | None, str | None]] | None = None
        # Set when data frames carry metadata (multiplex `meta`): the client may send
        # requests (see `on_request`) and ask for positions.
        self.meta: MetaFrames | None = None
        # Set when publications reach this session with their stream positions.
        self.positions: Positions | None = None
        # Presence, on a topic that has it: this session as a member, and the diffs it watches.
        self._presence: Attendance | None = None
        # Broadcasts that arrived before its client was told of the subscription (`hold`).
        self._held: list[Message] | None = None

    def _to(self, state: SessionState) -> None:
        """Move to `state`: the one place the session's state changes."""
        if __debug__:
            check_session_move(self.state, state)
        self.state = state

    # --- ChannelTarget and Subscriber ------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the session, or its socket, is closing or closed."""
        socket = self.socket
        return (
            self.state >= _CLOSING
            or self.outbox.closed
            or (socket is not None and socket.state >= ConnectionState.CLOSING)
        )

    @property
    def client_id(self) -> str:
        """Id of this connection in every process: the broker's node and the subscriber id.

        The broker knows the session by it once it was read (for ``Broker.disconnect`` and
        the others): a connection nobody names costs nothing."""
        client_id = f"{self.broker.node}.{self.subscriber_id[1:]}"
        # Not once refused or leaving: each took the session out, and a dependency's teardown
        # or a leave handler that reads the id must not put it back (kept for ever).
        if self.state < _LEAVING and self.state is not _REFUSED:
            self.broker.clients.add(client_id, self)
        return client_id

    def client_id_if_known(self) -> str | None:
        """`client_id` if it was made, without making it."""
        return None if self._subscriber_id is None else f"{self.broker.node}.{self._subscriber_id[1:]}"

    def present_as(self) -> Member | None:
        """This session's presence member, once its join returned."""
        return None if self._presence is None else self._presence.member

    @property
    def subscriber_id(self) -> str:
        """Process-unique id, made on first use (only broadcasts that exclude the sender need it)."""
        if self._subscriber_id is None:
            self._subscriber_id = new_subscriber_id()
        return self._subscriber_id

    def send_event(self, event: Message) -> Coroutine[Any, Any, None]:
        """Send an encoded event to this client (in order with queued broadcasts)."""
        if self.state >= _CLOSING:
            return raise_when_awaited(ChannelClosed(f"the WebSocket connection to {self.topic} is closed"))
        return self.outbox.send(event if self._frame is None else self._frame(event))

    async def broadcast_event(self, event: Message, exclude_self: bool) -> None:
        """Publish an encoded event to this session's topic."""
        await self.broker.publish_event(self.topic, event, self.subscriber_id if exclude_self else None)

    def deliver(self, event: Message) -> None:
        """A broadcast for this topic arrived: queue it (never blocks); held while `hold`s.
        Dropped once the server closes the session: on a multiplexed socket its client was
        told the topic ended (``UNSUBSCRIBE``), and nothing of the topic may follow that."""
        if self.state < _CLOSING:
            held = self._held
            if held is None:
                self.outbox.push(event if self._frame is None else self._frame(event))
            else:
                held.append(event)

    def hold(self) -> None:
        """Keep broadcasts from now until `release`: a multiplexed topic is subscribed before
        its ``OK`` is sent (the backend may take a round trip), and data must follow it."""
        self._held = []

    def deliver_at(self, event: Message, position: StreamPosition) -> None:
        """A publication with its stream position arrived (a positions subscription only):
        held while the subscription catches up, dropped if already sent, else queued."""
        if self.state < _CLOSING:
            positions = self.positions
            assert positions is not None and self.meta is not None
            if positions.held is not None:
                positions.held.append((event, position))
            else:
                self._push_at(positions, event, position)

    def _attendance(self) -> Attendance:
        if self._presence is None:
            self._presence = Attendance()
        return self._presence

    def deliver_presence(self, diff: str) -> None:
        """A presence diff of this topic arrived: held until the client has the state."""
        if self.state < _CLOSING:
            held = self._attendance().held
            if held is not None:
                held.append(diff)
            else:
                self.outbox.push(self.meta.presence("diff", diff))  # type: ignore[union-attr]

    async def watch_presence(self) -> str | None:
        """Get this topic's presence diffs from now on, held until `release`; returns the
        state to send first (None when the broker cannot be read)."""
        attendance = self._attendance()
        attendance.held = []
        attendance.watching = True
        self.broker.watch_presence(self.topic, self)
        try:
            return await self.broker.presence_state(self.topic)
        except BrokerUnavailable as exc:
            logger.warning("reading the presence of %s failed: %s", self.topic, exc)
            return None

    async def topic_presence(self) -> list[Member]:
        """The members of this topic (`Channel.presence`)."""
        return await self.broker.presence(self.topic)

    async def update_presence(self, info: JsonValue) -> bool:
        """Replace this member's `info` (`Channel.update_presence`); False when it is no
        member (its join has not returned, made none, or it is leaving)."""
        self.broker.presence_options(self.topic)
        encoded = info_json(info)  # the same check, and error, as a join's
        attendance = self._presence
        if attendance is None or attendance.member is None or self.state >= _LEAVING:
            return False
        member = attendance.member
        # Compared and kept as JSON: `1 == True` in Python, not on the wire, and a dict the
        # caller changes later must not change what was announced.
        if encoded == info_json(member.info):
            return True  # nothing to announce
        updated = Member(member.client_id, member.user, orjson.loads(encoded))
        # A join of a known client id replaces it, in the next batch, for every watcher.
        await self.broker.track(self.topic, updated)
        attendance.member = updated
        return True

    async def _track(self, result: object) -> None:
        """Make this session a member of its topic, named by its join's `PresenceInfo`."""
        info = result if isinstance(result, PresenceInfo) else _NOBODY
        member = Member(self.client_id, info.user, info.info)  # JSON already (`PresenceInfo`)
        try:
            await self.broker.track(self.topic, member)
        except BrokerUnavailable as exc:
            logger.warning("%s could not be made present on %s: %s", member.client_id, self.topic, exc)
            return
        self._attendance().member = member
        if member.user is not None:
            self.broker.clients.add_user(member.user, self)

    def _push_at(self, positions: Positions, event: Message, position: StreamPosition) -> None:
        epoch, offset = position
        if epoch == positions.epoch:
            if offset <= positions.offset:
                return  # already sent (replayed, or a copy)
            positions.offset = offset
            frame = self.meta.publication(event, offset, None)  # type: ignore[union-attr]
        else:
            positions.epoch, positions.offset = position
            frame = self.meta.publication(event, offset, epoch)  # type: ignore[union-attr]
        self.outbox.push(frame)

    async def close(self, code: int = status.NORMAL, reason: str = "") -> None:
        """Close this session with `code` and `reason` (once; later calls do nothing)."""
        await self.try_close(code, reason)

    async def try_close(self, code: int = status.NORMAL, reason: str = "") -> bool:
        """`close`, and whether this call closed it: False when the session, or its socket,
        was closing or closed already (server-side control counts what it closed)."""
        if not (code in _SERVER_CLOSE_CODES or 3000 <= code <= 4999):
            raise ValueError(f"close code {code} cannot be sent: use 1000, 1001-1014 or 3000-4999")
        state = self.state
        if state >= _CLOSING:
            return False
        if state < _OPEN:
            raise RuntimeError(
                f"the WebSocket connection to {self.topic} cannot be closed before it is accepted: "
                "to refuse it, raise Reject(status, detail) in a guard or dependency"
            )
        reason = clip_reason(reason)
        self.close_status = WebSocketStatus(code, reason)
        self._to(_CLOSING)
        if self.socket is None:
            return True
        return await self.socket.close_session(self, code, reason)

    # --- handshake ----------------------------------------------------------------------

    def _values(self, handler: Handler) -> dict[str, Any] | None:
        """The connection-level values prepared for `handler`, if any."""
        if handler is self._first_handler:
            return self._first_values
        return None if self._more_values is None else self._more_values.get(handler)

    async def _prepare(self, handler: Handler, params: dict[str, Any]) -> dict[str, Any] | None:
        """Connection-level values of `handler` (guards, params, dependencies); None if it forwarded."""
        values = self._values(handler)
        if values is not None:
            return values
        if self._forwarded is not None and handler in self._forwarded:
            return None
        # A copy: the route table caches `params` for every connection to this path. No key
        # for a path without parameters (Starlette reads a missing key as {}): an idle
        # socket keeps no empty dict.
        if params:
            self.request.scope["path_params"] = dict(params)
        else:
            self.request.scope.pop("path_params", None)
        try:
            values = await handler.plan.connection_values(self)
        except Forward:
            if self._forwarded is None:
                self._forwarded = set()
            self._forwarded.add(handler)
            return None
        except HTTPException as exc:
            raise Reject.from_http(exc) from exc
        except WebSocketException as exc:
            # FastAPI's WebSocket docs raise it in a dependency to refuse: before accept, a
            # close is an HTTP 403 (ASGI), so that is the refusal, with its reason.
            raise Reject(403, exc.reason or "Forbidden") from exc
        if self._first_handler is None:
            self._first_handler, self._first_values = handler, values
        else:
            if self._more_values is None:
                self._more_values = {}
            self._more_values[handler] = values
        return values

    async def handshake(self) -> None:
        """Choose who accepts the connection: a `join` handler, else a `message` handler
        ("join mode"). Raises `Reject` (404 when no handler is left).

        Whatever ends it otherwise (a `Reject`, a bug, a cancellation), the session is
        refused and the dependencies the guards already set up are torn down.
        """
        try:
            path = self.route_path
            for handler, params in self.table.match("join", path):
                if await self._prepare(handler, params) is not None:
                    self.join_handler = handler
                    self._accepted(handler)
                    return
            for handler, params in self.table.match("message", path):
                if await self._prepare(handler, params) is not None:
                    self._choose(handler)
                    self._accepted(handler)
                    return
            raise Reject(404, f"no WebSocket handler for {path}")
        except BaseException:
            self._to(_REFUSED)
            if self._subscriber_id is not None:
                # A guard read `channel.client_id`: the refused session must not stay named
                # (kept for ever, and a command by that id would reach its socket).
                self.broker.clients.remove(self)
            await self.close_dependencies()
            raise

    def _accepted(self, handler: Handler) -> None:
        if handler.query_in_topic and self.request.scope.get("query_string"):
            self.topic = f"{self.topic}?{self.request.scope['query_string'].decode('latin-1')}"
        forget_parsed(self.request)
        taker = self.message_handler
        if taker is None:
            # A join handler accepted: its messages will go to the first message handler by
            # rank (whose guards have not run yet), so that one's limit is the connection's.
            found = self.table.match("message", self.route_path)
            taker = found[0][0] if found else None
        rate = self.settings.rate_limit if taker is None or taker.rate_limit is None else taker.rate_limit
        if rate is not None:
            self.bucket = TokenBucket(*rate)
        self._to(_ACCEPTED)

    async def subscribe(self) -> None:
        """Subscribe to the topic (before the join body runs, so the joiner sees its own join)."""
        await self.broker.add_subscriber(self.topic, self)
        if await self._ended_while_subscribing():
            return
        self._to(_OPEN)
        await self._present_without_join()

    async def _ended_while_subscribing(self) -> bool:
        """Whether the session left while the backend subscribed it (its socket ended under
        a server-side subscribe, which runs in a task of its own): it then must not open,
        nor be listed anywhere."""
        if self.state is _ACCEPTED:
            return False
        await self.broker.remove_subscriber(self.topic, self)
        return True

    async def _present_without_join(self) -> None:
        # With a join handler the session is made present when the join returns.
        if self.join_handler is None and self.broker.topics and self.broker.has_presence(self.topic):
            await self._track(None)

    def history_options(self) -> TopicOptions | None:
        """The options of this session's topic when it has history (positions can be granted)."""
        topics = self.broker.topics
        options = topics.get(self.topic) if topics else None
        return options if options is not None and options.policy is not None else None

    async def stream_position(self) -> StreamPosition | None:
        """The current position of this topic's stream (`Channel.position`)."""
        return None if self.history_options() is None else await self.broker.position(self.topic)

    async def subscribe_with_positions(
        self, options: TopicOptions, since: StreamPosition | None
    ) -> tuple[StreamPosition | None, bool]:
        """Subscribe so that publications come with their positions, recovering from `since`.

        Subscribes first, then reads the stream, holding what arrives meanwhile: nothing
        published after the read is missed, nothing before it is sent twice. Returns the
        position the subscription starts from (None when the stream could not be read:
        the first publication then carries its epoch) and whether every publication after
        `since` will be replayed. Call `release` once the client was told.
        """
        positions = self.positions = Positions()
        await self.broker.add_subscriber(self.topic, self, positions=True)
        if await self._ended_while_subscribing():
            return None, False
        self._to(_OPEN)
        await self._present_without_join()
        after, limit = (None, 0) if since is None else (since.offset, options.recovery_limit + 1)
        try:
            read = await self.broker.read_stream(self.topic, after, limit)
        except BrokerUnavailable as exc:
            logger.warning("reading the history of %s failed: %s", self.topic, exc)
            return None, False
        replay = None if since is None else recovery(read, since, options.recovery_limit)
        if replay is not None and not self.broker.receiving(self.topic):
            # The subscription is down (Redis's pub/sub connection, reconnecting): what is
            # published from now until it is back never reaches this process, so the replay
            # cannot be complete, and the client is told so.
            replay = None
        if replay and not self._replay_fits(replay, len(positions.held or ())):
            replay = None  # the slow-consumer policy would evict the socket or leave holes
        start = read.position if replay is None else since
        assert start is not None
        positions.epoch, positions.offset = start
        if replay:
            held = positions.held
            assert held is not None
            positions.held = [(_event(p.data), StreamPosition(p.epoch, p.offset)) for p in replay]
            positions.held += held
        return start, replay is not None

    def _replay_fits(self, replay: list[Publication], held: int) -> bool:
        """Whether the outgoing queue holds the whole replay (with what is held, the OK and
        the presence state) if the client reads none of it yet: recovery is all or nothing."""
        overhead = len(self.topic) + 32  # a publication's frame: topic, separators, offset
        size = sum(len(p.data) + overhead for p in replay)
        return self.outbox.fits(len(replay) + held + 2, size)

    def release(self, presence_state: str | None = None) -> None:
        """Send what waited for the client to be told of its subscription: the presence
        state, the replayed and held publications (in offset order, once each), the held
        broadcasts that carry no position, the held presence diffs; then go live."""
        live = self.state < _CLOSING
        if presence_state is not None and live:
            self.outbox.push(self.meta.presence("state", presence_state))  # type: ignore[union-attr]
        positions = self.positions
        if positions is not None and positions.held is not None:
            held, positions.held = positions.held, None
            if live:
                for event, position in held:
                    self._push_at(positions, event, position)
        plain, self._held = self._held, None
        if plain and live:
            frame = self._frame
            for event in plain:
                self.outbox.push(event if frame is None else frame(event))
        attendance = self._presence
        if attendance is None or attendance.held is None:
            return
        diffs, attendance.held = attendance.held, None
        if live:
            for diff in diffs:
                self.outbox.push(self.meta.presence("diff", diff))  # type: ignore[union-attr]

    # --- events -------------------------------------------------------------------------

    def start_join(self) -> bool:
        """Enter JOINING when a join handler accepted the session: messages queue until
        `join_then_drain` has run the join body. False when there is no join body."""
        if self.join_handler is None:
            return False
        self._pending = deque()
        self._to(_JOINING)
        return True

    async def join_then_drain(self) -> None:
        """Run the join body, then the messages that arrived meanwhile, in order; then OPEN."""
        handler = self.join_handler
        assert handler is not None and self.state is _JOINING
        try:
            try:
                values = self._values(handler)
                assert values is not None  # prepared by the handshake
                result = await self._call(handler, values, None, None)
            except Exception as exc:
                await self.handle_error(exc)
            else:
                # Not on a socket a `Broker.disconnect` is closing: watchers would see a join
                # of someone already being put out.
                if (
                    self.state is _JOINING
                    and not self.closed
                    and self.broker.topics
                    and self.broker.has_presence(self.topic)
                ):
                    await self._track(result)
            pending = self._pending
            # Messages arriving while these run join the end of the queue: order holds.
            while pending and self.state is _JOINING and not self.outbox.closed:
                text, data, request_id = pending.popleft()
                if request_id is None:
                    await self.on_message(text, data)
                else:
                    await self.on_request(request_id, text, data)
            if self.state is _JOINING:
                self._to(_OPEN)
        finally:
            self._pending = None

    async def receive(self, text: str | None, data: bytes | None, request_id: str | None = None) -> None:
        """A message (a request when `request_id` is set) for this session: handled now,
        queued while the join body runs, and dropped once the session is closing (nothing
        may handle it any more)."""
        state = self.state
        if state is _OPEN:
            if request_id is None:
                await self.on_message(text, data)
            else:
                await self.on_request(request_id, text, data)
        elif state is _JOINING:
            pending = self._pending
            assert pending is not None
            if len(pending) < self.settings.max_queue:
                pending.append((text, data, request_id))
            else:
                await self.close(status.POLICY_VIOLATION, "too many messages before join returned")

    async def on_message(self, text: str | None, data: bytes | None) -> None:
        """Dispatch one received message; errors go to the exception handlers."""
        try:
            if self._fast is not None:
                await self.message_call(text, data)
            else:
                await self._dispatch(text, data)
        except Exception as exc:
            await self.recover(exc, text, data)

    async def on_request(self, request_id: str, text: str | None, data: bytes | None) -> None:
        """Handle a request: the handler's return value goes back to this client only, as
        the reply; an exception becomes an error reply with the close code and reason it
        would have closed the session with, and the session stays open."""
        replies = self.meta
        assert replies is not None  # the socket sends requests only where metadata is on
        # The handler's result, called as `on_message` and `recover` do (inline: a request
        # is as hot a path as a message, and a helper coroutine costs a frame).
        try:
            if self._fast is None:
                result = await self._dispatch(text, data)
            else:
                try:
                    result = await self.message_call(text, data)
                except Forward:
                    if self.message_handler is None:
                        raise
                    result = await self._dispatch(text, data, after=self.message_handler)
        except Exception as exc:
            end = self.error_status(exc)
            if end is None:
                return
            reply = replies.error(request_id, end.code, end.reason)
        else:
            try:
                reply = replies.ok(request_id, None if result is None else encode(result))
            except Exception as exc:
                logger.error("cannot encode the reply of the handler for %s", self.route_path, exc_info=exc)
                reply = replies.error(request_id, status.INTERNAL_ERROR, "Internal Error")
        if self.state < _CLOSING:
            # try/except, not contextlib.suppress: it costs ~0.35 µs per reply less.
            try:  # noqa: SIM105
                await self.outbox.send(reply)
            except ChannelClosed:
                pass  # the socket is going: nobody to answer

    def message_call(self, text: str | None, data: bytes | None) -> Awaitable[Any]:
        """What handles one message: the chosen handler's own coroutine when it needs no
        event-scoped dependencies, else `on_message`.

        For a dedicated socket's receive loop, which awaits the handler without a frame of
        ours in between. Errors (raised here, or by the awaitable) go to `recover`.
        """
        fast = self._fast
        if fast is None:
            return self.on_message(text, data)
        if not fast:
            fast = self._build_fast()
        fn, head, tail, by_name, by_name_param, decoder, limit = fast
        if text is not None:
            # len(text) <= UTF-8 size <= 4 * len(text): the exact check only when in doubt.
            if len(text) * 4 > limit:
                check_size(limit, text, data)
        elif data is not None and len(data) > limit:
            check_size(limit, text, data)
        if decoder is None:
            return fn(*head, **by_name)
        if by_name_param is None:
            # Concatenated: faster than `fn(*head, message, *tail)`, which builds a list.
            return fn(*(head + (decoder(text, data),) + tail), **by_name)  # noqa: RUF005
        kwargs = by_name.copy()
        kwargs[by_name_param] = decoder(text, data)
        return fn(*head, **kwargs)

    async def rate_limited(self, text: str | None = None, data: bytes | None = None) -> None:
        """A message over this connection's rate limit was dropped: `RateLimited` (carrying
        it) goes to the exception handlers (by default: close 1008 ``rate limit exceeded``)."""
        await self.handle_error(RateLimited("rate limit exceeded", text, data))

    async def request_rate_limited(self, request_id: str) -> None:
        """A request over the rate limit was dropped: it is answered as a failed request is
        (error 1008, the topic stays open), not given to the exception handlers, which
        would answer through the channel rather than as its reply."""
        replies = self.meta
        assert replies is not None
        if self.state < _CLOSING:
            reply = replies.error(request_id, status.POLICY_VIOLATION, "rate limit exceeded")
            try:  # noqa: SIM105
                await self.outbox.send(reply)
            except ChannelClosed:
                pass  # the socket is going: nobody to answer

    async def recover(self, exc: Exception, text: str | None, data: bytes | None) -> None:
        """Handle an error of `message_call`: a `Forward` from the handler's body tries the
        handlers ranked after it; anything else goes to the exception handlers."""
        if isinstance(exc, Forward) and self.message_handler is not None:
            try:
                await self._dispatch(text, data, after=self.message_handler)
                return
            except Exception as again:
                exc = again
        await self.handle_error(exc)

    async def _dispatch(self, text: str | None, data: bytes | None, after: Handler | None = None) -> Any:
        candidates = self.table.match("message", self.route_path)
        start = after or self.message_handler
        if start is not None:
            # Handlers ranked before the one that accepted this connection have already
            # forwarded; after a Forward from a handler's body, try the ones after it.
            index = next(i for i, (h, _) in enumerate(candidates) if h is start)
            candidates = candidates[index + 1 if after is not None else index :]
        for handler, params in candidates:
            values = await self._prepare(handler, params)
            if values is None:
                continue
            check_size(handler.max_message_size or self.settings.max_message_size, text, data)
            if self.message_handler is None:
                self._choose(handler)
            try:
                return await self._call(handler, values, text, data)
            except Forward:
                continue
        raise Unhandled(f"no message handler accepted the message on {self.route_path}")

    def _choose(self, handler: Handler) -> None:
        """`handler` takes this connection's messages from now on (through its fast call,
        built by the first message, when it has no event-scoped dependencies)."""
        self.message_handler = handler
        self._fast = None if handler.plan.event_params else ()

    def _build_fast(self) -> _FastCall:
        """The chosen handler's fast call: the values before and after the message by
        position, the rest by name."""
        handler = self.message_handler
        assert handler is not None  # only a chosen handler has a fast call to build
        plan = handler.plan
        values = self._values(handler)
        assert values is not None  # prepared before it was chosen
        head, tail, by_name_names, by_name_param = plan.call_layout
        by_name = {name: values[name] for name in by_name_names}
        fast = self._fast = (
            plan.fn,
            tuple(values[name] for name in head),
            tuple(values[name] for name in tail),
            by_name or _NO_KWARGS,
            by_name_param,
            plan.decoder,
            handler.max_message_size or self.settings.max_message_size,
        )
        return fast

    async def _call(
        self,
        handler: Handler,
        values: dict[str, Any],
        text: str | None,
        data: bytes | None,
        leave_status: WebSocketStatus | None = None,
    ) -> Any:
        plan = handler.plan
        kwargs = values.copy()
        if plan.decoder is not None:
            kwargs[plan.message_param] = plan.decoder(text, data)  # type: ignore[index]
        if plan.status_param is not None:
            kwargs[plan.status_param] = leave_status
        if not plan.event_params:
            return await _by_name(plan, kwargs)
        async with AsyncExitStack() as stack:
            event = EventState(stack)
            for name, source in plan.event_params:
                kwargs[name] = await source.resolve(self, event)
            return await _by_name(plan, kwargs)

    async def handle_error(self, exc: Exception) -> None:
        """Run the registered exception handler for `exc`, or the default (a close code)."""
        custom = self.settings.exception_handler_for(exc)
        if custom is not None:
            try:
                await custom(self.channel, exc)
                return
            except ChannelClosed:
                return
            except Exception as again:
                exc = again
        end = self.error_status(exc)
        if end is not None:
            await self._close_quietly(end.code, end.reason)

    def error_status(self, exc: Exception) -> WebSocketStatus | None:
        """The close code and reason the default exception handling gives `exc` (logging
        what needs a log); None for `ChannelClosed`: the client went away mid-handler."""
        if isinstance(exc, ChannelClosed):
            return None
        # Reasons clipped as a close frame clips them: an error reply carries the same.
        if isinstance(exc, MessageError):
            return WebSocketStatus(exc.code, clip_reason(exc.reason))
        if isinstance(exc, WebSocketException):
            if not (exc.code in _SERVER_CLOSE_CODES or 3000 <= exc.code <= 4999):
                # 1005, 1006, 1015, 2xxx…: no close frame may carry it, so it is a bug too.
                logger.error(
                    "WebSocketException(%d) in WebSocket handler for %s: a server cannot close with "
                    "that code (use 1000, 1001-1014 or 3000-4999); closing with 1011",
                    exc.code, self.route_path,
                )  # fmt: skip
                return WebSocketStatus(status.INTERNAL_ERROR, "Internal Error")
            return WebSocketStatus(exc.code, clip_reason(exc.reason or ""))
        if isinstance(exc, Reject):
            return WebSocketStatus(status.POLICY_VIOLATION, clip_reason(str(exc.detail)))
        if isinstance(exc, Forward):
            return WebSocketStatus(status.UNSUPPORTED_DATA, "no handler accepted the event")
        if isinstance(exc, BrokerUnavailable):
            # An outage, not a bug: no traceback; 1013 tells the client to come back later.
            logger.warning("broadcast from %s failed: %s", self.route_path, exc)
            return WebSocketStatus(status.TRY_AGAIN_LATER, "broker unavailable, try again later")
        logger.error("exception in WebSocket handler for %s", self.route_path, exc_info=exc)
        return WebSocketStatus(status.INTERNAL_ERROR, "Internal Error")

    async def _close_quietly(self, code: int, reason: str) -> None:
        try:
            await self.close(code, reason)
        except Exception:  # pragma: no cover - the socket is already gone
            logger.debug("close after error failed", exc_info=True)

    # --- leave --------------------------------------------------------------------------

    async def finish(self, end: WebSocketStatus) -> None:
        """Unsubscribe, run the leave handler and tear down dependencies — exactly once.

        The leave starts in the caller's step and, if it has to wait, goes on in a task of
        its own: a caller cancelled meanwhile (a socket evicted while one of its topics was
        closing) does not cut it short, and a later caller waits for the same leave rather
        than skipping it.
        """
        leaving = self._leaving
        if leaving is None:
            if self.state is _LEFT:
                return  # it left in the first caller's step, without waiting
            self._to(_LEAVING)
            leaving = self._leaving = start_eagerly(self._leave(end))
            if leaving is None:
                return
        await asyncio.shield(leaving)

    @property
    def left(self) -> bool:
        """True once the leave has run to its end (unsubscribed, handler run, torn down)."""
        return self.state is _LEFT

    async def _leave(self, end: WebSocketStatus) -> None:
        if self._subscriber_id is not None:
            self.broker.clients.remove(self)
        # Absent before the leave handler runs: it (and the others) see the topic without it.
        attendance = self._presence
        if attendance is not None:
            if attendance.watching:
                self.broker.unwatch_presence(self.topic, self)
            if attendance.member is not None:
                try:
                    await self.broker.untrack(self.topic, attendance.member.client_id)
                except Exception:
                    logger.exception("leaving the presence of %s failed", self.topic)
        try:
            # Whatever its state: a subscription cut short (cancelled while the backend
            # subscribed) is already listed, and removing one that is not costs a lookup.
            await self.broker.remove_subscriber(self.topic, self)
        except Exception:
            logger.exception("unsubscribing %s failed", self.topic)
        try:
            for handler, params in self.table.match("leave", self.route_path):
                try:
                    values = await self._prepare(handler, params)
                except Reject:
                    continue
                if values is None:
                    continue
                try:
                    await self._call(handler, values, None, None, end)
                except Forward:
                    continue
                break
        except Exception:
            logger.exception("exception in WebSocket leave handler for %s", self.route_path)
        finally:
            try:
                await self.close_dependencies()
            except Exception:
                logger.exception("tearing down dependencies of %s failed", self.route_path)
            finally:
                self._to(_LEFT)
                self._release()

    def _release(self) -> None:
        """Once left, drop the references that close cycles through this session.

        A live session is in cycles: its channel, its dependency cache (a connection-scoped
        dependency may hold the channel) and its prepared values point back at it, and it
        and its socket point at each other. Left as they are,
        an ended connection (the server's objects for it included) waits for Python's
        cycle collector, a full pass over the heap, instead of being freed by reference
        counting the moment it ends. A channel the app still holds keeps working: it
        reads this session, whose state says it has left.
        """
        self.socket = None
        self._first_values = self._more_values = None
        self._fast = None
        self._dependencies = None
        del self.channel


def _event(data: str | bytes) -> Message:
    """The send event of a stored publication's wire data."""
    return text_event(data) if isinstance(data, str) else bytes_event(data)
