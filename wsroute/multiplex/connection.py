"""A `rocket-multiplex` socket: many topics on one WebSocket, each a virtual connection.

Every subscribed topic gets its own `Session` — its own copy of the handshake request
with the topic as URL, its own local cache, join, leave and subscription — so handlers
cannot tell it from a dedicated connection. The connect URL is the first topic. Frames are
parsed and built by the sans-I/O `codec`; this module only does the bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from urllib.parse import quote, unquote_plus

from starlette.types import Message, Receive, Scope, Send

from wsroute.broker import Broker
from wsroute.connection import BaseConnection
from wsroute.errors import ChannelClosed
from wsroute.guards import Reject
from wsroute.history import StreamPosition
from wsroute.lifecycle import ConnectionState, SessionState
from wsroute.messages import text_event
from wsroute.multiplex.codec import (
    META,
    OPTIONS_PARAM,
    POSITIONS,
    PRESENCE,
    SEP,
    SINCE,
    ClientFrame,
    DataFrame,
    InvalidTopic,
    ProtocolError,
    Reason,
    Subscribe,
    encode_binary,
    encode_err,
    encode_invalid,
    encode_items,
    encode_ok,
    encode_server_unsubscribe,
    encode_text,
    parse_client_frame,
    parse_options,
    parse_since,
    split_meta,
    split_topic,
)
from wsroute.ratelimit import TokenBucket
from wsroute.routes import RouteTable
from wsroute.session import Session
from wsroute.settings import Settings
from wsroute.status import NORMAL, POLICY_VIOLATION, SLOW_CONSUMER, WebSocketStatus

logger = logging.getLogger("wsroute")

_GONE = -1
"""What `_subscribe` returns when the socket ended while the topic's guards ran."""


class _TopicFramer:
    """Prefixes every outgoing event of one topic with ``topic·``, built once.

    An object with slots, not a closure: a subscription keeps one, and a closure with its
    cells would be four objects for the cycle collector to walk instead of one."""

    __slots__ = ("_text_prefix", "topic")

    def __init__(self, topic: str, head: str = "") -> None:
        self.topic = topic
        self._text_prefix = encode_text(topic, head)

    def __call__(self, event: Message) -> Message:
        text = event.get("text")
        if text is not None:
            return {"type": "websocket.send", "text": self._text_prefix + text}
        # Encoded per binary frame rather than kept: most topics never send one.
        return {"type": "websocket.send", "bytes": self._text_prefix.encode() + event["bytes"]}


class _MetaFramer(_TopicFramer):
    """Frames of a ``meta`` subscription: ``topic··payload`` for what handlers send and
    broadcasts, ``topic·reply=ID[,error=CODE]·payload`` for the answer to a request,
    ``topic·offset=N[,epoch=E]·payload`` for a publication with its position."""

    __slots__ = ("_reply_prefix",)

    def __init__(self, topic: str) -> None:
        super().__init__(topic, SEP)
        self._reply_prefix = encode_text(topic, "reply=")

    def ok(self, request_id: str, event: Message | None) -> Message:
        # The request id was checked when the request was parsed: no encoder checks here.
        head = self._reply_prefix + request_id + SEP
        if event is None:
            return text_event(head)
        text = event.get("text")
        if text is not None:
            return text_event(head + text)
        return {"type": "websocket.send", "bytes": head.encode() + event["bytes"]}

    def error(self, request_id: str, code: int, reason: str) -> Message:
        return text_event(encode_text(self.topic, f"reply={request_id},error={code}{SEP}{reason}"))

    def presence(self, kind: str, body: str) -> Message:
        return text_event(encode_text(self.topic, f"presence={kind}{SEP}{body}"))

    def publication(self, event: Message, offset: int, epoch: str | None) -> Message:
        # Epochs come from the backend (token_urlsafe) and offsets are ints: valid items.
        head = f"offset={offset}" if epoch is None else f"offset={offset},epoch={epoch}"
        text = event.get("text")
        if text is not None:
            return text_event(encode_text(self.topic, head + SEP + text))
        prefix = encode_binary(self.topic, (head + SEP).encode())
        return {"type": "websocket.send", "bytes": prefix + event["bytes"]}


# The subscription options this server grants (docs/protocol.md, "Extensions").
_KNOWN_OPTIONS = frozenset({META})


def _granted(options: dict[str, str]) -> dict[str, str]:
    """The options of `options` this server grants, in the order asked; unknown ones are
    left out, so a client learns from the OK reply what the server speaks."""
    return {name: value for name, value in options.items() if name in _KNOWN_OPTIONS}


def since_position(options: dict[str, str]) -> StreamPosition | None:
    """The position a subscription's options ask to recover from (``since``, used only
    with ``positions``); raises `ProtocolError` for a malformed one, used or not."""
    value = options.get(SINCE)
    if value is None:
        return None
    since = StreamPosition(*parse_since(value))
    return since if POSITIONS in options else None


def take_connect_options(scope: Scope) -> tuple[Scope, dict[str, str] | ProtocolError]:
    """Remove the ``rocket-multiplex`` query parameter (the connect topic's subscription
    options) from the handshake's scope: the app and the topic's name never see it."""
    query: bytes = scope.get("query_string", b"")
    if OPTIONS_PARAM.encode() not in query:
        return scope, {}
    kept: list[bytes] = []
    found: str | None = None
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if name.decode("latin-1") == OPTIONS_PARAM and found is None:
            found = unquote_plus(value.decode("latin-1"))
        else:
            kept.append(part)
    if found is None:
        return scope, {}
    stripped: Scope = {**scope, "query_string": b"&".join(kept)}
    try:
        options = parse_options(found)
        since_position(options)
    except ProtocolError as exc:
        return stripped, exc
    return stripped, options


def connect_topic(scope: Scope) -> str:
    """The first topic's name on the wire: the connect path as sent, plus ``?query``."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(scope["path"])
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


class MultiplexConnection(BaseConnection):
    """One socket speaking `rocket-multiplex`; `topics` maps wire topic names to sessions."""

    __slots__ = (
        "_bucket",
        "_closing",
        "_deferred",
        "_first_options",
        "_handling",
        "_leaving",
        "_subscribing",
        "first",
        "first_topic",
        "topics",
    )

    def __init__(
        self,
        table: RouteTable,
        settings: Settings,
        broker: Broker,
        scope: Scope,
        receive: Receive,
        send: Send,
        subprotocol: str,
    ) -> None:
        super().__init__(table, settings, broker, scope, receive, send)
        self.subprotocol = subprotocol
        self.topics: dict[str, Session] = {}
        # Topics taken out of `topics` whose leave has not finished, with their own end:
        # if the socket ends meanwhile (evicted, reset), its teardown still finishes them.
        self._closing: dict[Session, WebSocketStatus] = {}
        # Those same topics by name, each with its end to come (the leave run, and for the
        # client's UNSUBSCRIBE its OK sent): a SUBSCRIBE of the topic meanwhile waits for it,
        # so that the client never hears OK SUBSCRIBE before the old OK UNSUBSCRIBE.
        self._leaving: dict[str, asyncio.Future[None]] | None = None
        # The session whose message handler the receive loop runs now, and a leave put off
        # until it returns (a server-side close of that topic meanwhile).
        self._handling: Session | None = None
        self._deferred: tuple[str, Session, WebSocketStatus, asyncio.Future[None]] | None = None
        # Topics whose guards are running, each with the outcome to come (0, or the
        # refusal's status): a second SUBSCRIBE meanwhile (the client's and the server's
        # `Broker.subscribe` can race) must not make a second session. None while there
        # are none, so an idle socket carries no dict.
        self._subscribing: dict[str, asyncio.Future[int]] | None = None
        # The router's rate limit, for the frames no topic counts; made at accept.
        self._bucket: TokenBucket | None = None
        scope, options = take_connect_options(scope)
        self._first_options = options
        self.first_topic = connect_topic(scope)
        granted = _granted(options) if isinstance(options, dict) else {}
        self.first = self._session(self.first_topic, scope, granted)

    def _session(self, topic: str, scope: Scope, options: dict[str, str]) -> Session:
        if META not in options:
            return self.new_session(scope, _TopicFramer(topic))
        framer = _MetaFramer(topic)
        session = self.new_session(scope, framer)
        session.meta = framer
        return session

    def sessions(self) -> list[Session]:
        return list(self.topics.values())

    def accepted_sessions(self) -> list[Session]:
        return [self.first]

    async def close_session(self, session: Session, code: int, reason: str) -> bool:
        if self.state is not ConnectionState.OPEN:
            return False  # the whole socket is closing: its topics end with its code
        # Looked up, not kept per session: a closure per topic costs every subscription,
        # and a server-side close is rare (at most `max_topics` to search).
        for topic, subscribed in self.topics.items():
            if subscribed is session:
                return await self._close_topic(topic, code, reason)
        return False  # its topic is being left already (the client's UNSUBSCRIBE)

    async def open(self) -> None:
        if isinstance(self._first_options, ProtocolError):
            raise Reject(400, f"invalid {OPTIONS_PARAM} options: {self._first_options.detail}")
        # The connect topic follows the rules a SUBSCRIBE's does: one the client could not
        # name in a frame (over 100 bytes), or a `%C2%B7` smuggled into a path parameter.
        try:
            split_topic(self.first_topic)
        except InvalidTopic as exc:
            raise Reject(400, f"invalid topic: {exc.why}") from None
        await self.first.handshake()

    async def start(self) -> None:
        rate = self.settings.rate_limit
        if rate is not None:
            self._bucket = TokenBucket(*rate)
        first = self.first
        self.topics[self.first_topic] = first
        options = self._first_options
        assert isinstance(options, dict)  # else `open` refused the handshake
        granted, presence_state = await self._subscribe_session(first, options, _granted(options))
        if options:
            # The connect topic was subscribed by the handshake: its options get the same
            # OK a SUBSCRIBE would, first on the socket.
            await self._reply(self._ok_subscribe(self.first_topic, granted))
        first.release(presence_state)
        self.start_join(first)

    @staticmethod
    async def _subscribe_session(
        session: Session, options: dict[str, str], granted: dict[str, str]
    ) -> tuple[dict[str, str], str | None]:
        """Subscribe `session`. Returns the items of its OK (the granted options; for a
        positions subscription where it starts and whether it recovered; for a presence
        one, the client's id) and the presence state to send after the OK."""
        meta = META in granted
        history = session.history_options() if meta and POSITIONS in options else None
        answer = dict(granted)
        session.hold()  # until `release`, after the OK
        if history is None:
            await session.subscribe()
        else:
            since = since_position(options)
            start, recovered = await session.subscribe_with_positions(history, since)
            answer[POSITIONS] = ""
            if start is not None:
                answer["epoch"], answer["offset"] = start.epoch, str(start.offset)
            if since is not None:
                answer["recovered"] = "true" if recovered else "false"
        state = None
        if session.state >= SessionState.LEAVING:
            return answer, None  # it ended meanwhile (see `_subscribe`): nothing to watch
        if meta and PRESENCE in options and session.broker.has_presence(session.topic):
            state = await session.watch_presence()
            answer[PRESENCE] = ""
            answer["client"] = session.client_id
        return answer, state

    @staticmethod
    def _ok_subscribe(topic: str, granted: dict[str, str]) -> str:
        if granted:
            return encode_ok("SUBSCRIBE", topic, encode_items(granted))
        return encode_ok("SUBSCRIBE", topic)

    async def _reply(self, text: str) -> None:
        with contextlib.suppress(ChannelClosed):
            await self.outbox.send(text_event(text))

    async def on_frame(self, text: str | None, data: bytes | None) -> None:
        frame: ClientFrame | ProtocolError
        try:
            frame = parse_client_frame(text, data)
        except ProtocolError as exc:
            frame = exc
        if isinstance(frame, DataFrame):
            session = self.topics.get(frame.topic)
            if session is not None:
                delivery = self._delivery(session, frame)
                if not isinstance(delivery, ProtocolError):
                    self._handling = session
                    try:
                        await delivery
                    finally:
                        self._handling = None
                    deferred = self._deferred
                    if deferred is not None:
                        self._deferred = None
                        await self._finish_topic(*deferred)
                    return
                frame = delivery  # a malformed metadata field: the socket answers it
        # No topic counts this frame, and no topic's handlers are asked about it: control
        # actions (each SUBSCRIBE runs guards) and frames for no topic have the router's
        # allowance per socket, and over it the socket is closed.
        bucket = self._bucket
        if bucket is not None and not bucket.take():
            await self.close_socket(POLICY_VIOLATION, "rate limit exceeded")
        elif isinstance(frame, ProtocolError):
            await self._reply(encode_invalid(frame.reason))
        elif isinstance(frame, DataFrame):
            await self._reply(encode_invalid(Reason.NOT_SUBSCRIBED))
        elif isinstance(frame, Subscribe):
            await self._subscribe(frame.topic, frame.options)
        else:
            params = [frame.topic]
            if frame.code is not None:
                params.append(str(frame.code))
                if frame.reason is not None:
                    params.append(frame.reason)
            end = WebSocketStatus(frame.code or NORMAL, frame.reason or "")
            if not await self._end_topic(frame.topic, end, reply=encode_ok("UNSUBSCRIBE", *params)):
                await self._reply(encode_err(Reason.NOT_SUBSCRIBED, "UNSUBSCRIBE", *params))

    @staticmethod
    def _delivery(session: Session, frame: DataFrame) -> Awaitable[None] | ProtocolError:
        """What gives `frame` to its topic's session (a request when its metadata has an
        id), or the `ProtocolError` of a malformed metadata field. Not a coroutine itself:
        every multiplexed message passes here, and a frame more would cost it."""
        text, data, request_id = frame.text, frame.data, None
        if session.meta is not None:
            try:
                items, text, data = split_meta(text, data)
            except ProtocolError as exc:
                return exc
            request_id = items.get("id")
            if request_id == "":
                # A bare `id` flag: its reply would be `reply=`, which no client can parse.
                return ProtocolError(Reason.INVALID_METADATA, "id without a value")
        # Counted for its topic, as for a dedicated socket: over the limit, the message is
        # dropped and that topic's exception handlers decide; a request gets its error reply.
        bucket = session.bucket
        if bucket is not None and not bucket.take():
            if request_id is not None:
                return session.request_rate_limited(request_id)
            return session.rate_limited(text, data)
        return session.receive(text, data, request_id)

    async def subscribe_topic(self, topic: str) -> int:
        """Subscribe this socket to `topic` from the server (``Broker.subscribe``), as if the
        client had sent ``SUBSCRIBE``: its guards run, the client gets the ``OK`` or ``ERR``.
        Returns 1 when subscribed; 0 when it already was (nothing is sent: a command is
        idempotent) or the socket is closing or gone; else minus the HTTP-like status of
        the refusal."""
        await self._wait_left(topic)
        for _ in range(3):  # a client that keeps asking again is not waited for forever
            pending = None if self._subscribing is None else self._subscribing.get(topic)
            if pending is None:
                break
            if await asyncio.shield(pending) == 0:
                return 0  # the client's own SUBSCRIBE of it, in its guards, went through
        if topic in self.topics or self.state is not ConnectionState.OPEN:
            return 0  # subscribed already, or closing: nothing to add a topic to
        refused = await self._subscribe(topic, {}, asked=False)
        if refused == _GONE:
            return 0
        return -refused if refused else 1

    async def _wait_left(self, topic: str) -> None:
        """Wait until a leave of `topic` under way (and its OK) is done. Not from the receive
        loop, which runs that leave or a handler it waits for; nor for a leave put off until
        the handler returns: that handler may be the one asking (through a control command's
        own task, on Redis), and such a leave has no OK to come before the new one."""
        leaving = self._leaving
        left = None if leaving is None else leaving.get(topic)
        if left is None or asyncio.current_task() is self._task:
            return
        deferred = self._deferred
        if deferred is not None and deferred[3] is left:
            return
        await asyncio.shield(left)

    async def _tell(self, text: str) -> None:
        """Queue a frame the client did not ask for (the server's UNSUBSCRIBE, a server-side
        subscribe's OK or ERR) without waiting on the client's backpressure: a client that
        stopped reading must not hold up the command. Its queue's slow-consumer policy
        applies, as to a broadcast."""
        self.outbox.push(text_event(text))

    def _has(self, topic: str) -> bool:
        """Whether `topic` is subscribed, or being subscribed (its guards running)."""
        return topic in self.topics or (self._subscribing is not None and topic in self._subscribing)

    async def _subscribe(self, topic: str, options: dict[str, str], *, asked: bool = True) -> int:
        """Subscribe to `topic` and answer ``OK``, or answer ``ERR``: 0, or the refusal's
        status (`_GONE` when the socket ended meanwhile). Not `asked` (``Broker.subscribe``):
        the answer is queued, never waited for."""
        say = self._reply if asked else self._tell
        try:
            since_position(options)
        except ProtocolError as exc:
            await say(encode_invalid(exc.reason))
            return 400
        # An ERR echoes the request's parameters, options included.
        params = (topic, encode_items(options)) if options else (topic,)
        try:
            path, raw_path, query = split_topic(topic)
        except InvalidTopic:
            await say(encode_err(Reason.INVALID_TOPIC, "SUBSCRIBE", *params))
            return 400
        await self._wait_left(topic)
        if self._has(topic):
            await say(encode_err(Reason.ALREADY_SUBSCRIBED, "SUBSCRIBE", *params))
            return 409
        subscribing = self._subscribing
        if len(self.topics) + (len(subscribing) if subscribing else 0) >= self.settings.max_topics:
            await say(encode_err(Reason.TOO_MANY_TOPICS, "SUBSCRIBE", *params))
            return 429
        if subscribing is None:
            subscribing = self._subscribing = {}
        # The topic is the URL path as the client sees it, as the connect topic is: under a
        # root path (a proxy's prefix, a mount) it starts with the root, which ASGI's `path`
        # includes too. One outside the root matches no route (404).
        scope: Scope = {
            **self.scope,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "path_params": {},
        }
        granted = _granted(options)
        session = self._session(topic, scope, granted)
        outcome = subscribing[topic] = asyncio.get_running_loop().create_future()
        refused = 500
        try:
            await session.handshake()
            refused = 0
        except Reject as reject:
            refused = reject.status_code
        except Exception:
            logger.exception("exception while subscribing to %s", topic)
        finally:
            # Settled before the ERR is sent: a waiting `Broker.subscribe` may try itself.
            del subscribing[topic]
            if not subscribing:
                self._subscribing = None
            outcome.set_result(refused)
        if refused:
            reason = "500 Internal Server Error" if refused == 500 else Reason.http(refused)
            await say(encode_err(reason, "SUBSCRIBE", *params))
            return refused
        if self.state is not ConnectionState.OPEN:
            # The socket is closing, or ended, while the guards ran (a server-side subscribe
            # in a task of its own, a Broker.disconnect meanwhile): no topic is added to it,
            # and its teardown may have taken its topics already, so this one ends here.
            # An evicted socket gets its status when its loop ends: until then, its own.
            await session.finish(self.close_status or SLOW_CONSUMER)
            return _GONE
        self.topics[topic] = session
        granted, presence_state = await self._subscribe_session(session, options, granted)
        if session.state >= SessionState.LEAVING:
            return _GONE  # the socket ended while the backend subscribed it: it has left
        # OK before the join body runs, as accept is for a dedicated connection; then what
        # a recovery replays, then live publications.
        await say(self._ok_subscribe(topic, granted))
        session.release(presence_state)
        self.start_join(session)
        return 0

    async def _close_topic(self, topic: str, code: int, reason: str) -> bool:
        """The server closed one topic: tell the client, then leave; the socket stays open.
        False when the topic was not subscribed (any more)."""
        return await self._end_topic(
            topic, WebSocketStatus(code, reason), notice=encode_server_unsubscribe(topic, code, reason)
        )

    async def _end_topic(
        self, topic: str, end: WebSocketStatus, notice: str | None = None, reply: str | None = None
    ) -> bool:
        """Take `topic` off the socket (queueing the server's `notice` first), run its leave,
        then send the client's `reply`; False when it is not subscribed."""
        session = self.topics.pop(topic, None)
        if session is None:
            return False
        self._closing[session] = end
        if self._leaving is None:
            self._leaving = {}
        left = self._leaving[topic] = asyncio.get_running_loop().create_future()
        if notice is not None:
            await self._tell(notice)
        if session is self._handling:
            # The server closed the topic while its message handler runs (the handler
            # itself, or a command from elsewhere): as on a dedicated socket, its leave and
            # teardown wait for the handler to return; the receive loop runs them then.
            self._deferred = (topic, session, end, left)
            return True
        await self._finish_topic(topic, session, end, left, reply)
        return True

    async def _finish_topic(
        self,
        topic: str,
        session: Session,
        end: WebSocketStatus,
        left: asyncio.Future[None],
        reply: str | None = None,
    ) -> None:
        try:
            await self.finish_session(session, end)
            self._closing.pop(session, None)
            if reply is not None:
                await self._reply(reply)
        finally:
            if not left.done():
                left.set_result(None)
            leaving = self._leaving
            # Only its own: the topic may have been subscribed and left again meanwhile.
            if leaving is not None and leaving.get(topic) is left:
                del leaving[topic]
                if not leaving:
                    self._leaving = None

    async def _finish_all(self, end: WebSocketStatus) -> None:
        for session, own_end in list(self._closing.items()):
            await self.finish_session(session, own_end)
        leaving, self._leaving = self._leaving, None
        waiting = list((leaving or {}).values())
        if self._deferred is not None:
            waiting.append(self._deferred[3])
        for left in waiting:
            if not left.done():
                left.set_result(None)
        await super()._finish_all(end)
