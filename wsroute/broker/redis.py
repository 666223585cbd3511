"""The Redis backend: broadcasts reach every process and host that shares one Redis.

``WsRouter(broker="redis://127.0.0.1:6379/0")`` (or ``rediss://…``, ``unix://…``) selects it;
it needs the ``redis`` extra (``pip install 'wsroute[redis]'``). It is built on Redis
pub/sub driven through `redis.asyncio` connections. Each process holds at most two
connections:

* the **publish connection**, opened by `start` (which fails fast with `BrokerUnavailable`
  naming the URL when Redis is unreachable). Publishes go through it one at a time, so the
  order of `publish` calls is the order Redis sees them; a write-only publisher (``async
  with Broker(url)``) holds only this one.
* the **subscription connection**, opened by a listener task on the first `subscribe`. It
  carries ``SUBSCRIBE``/``UNSUBSCRIBE`` in the order they were called and receives the
  messages. When it breaks, the listener reconnects with exponential backoff and jitter and
  subscribes again to every topic still wanted.

Topic ``/rooms/lobby`` is the Redis channel ``<channel_prefix>/rooms/lobby`` (prefix
``"wsroute:"`` by default; ``?channel_prefix=myapp:`` in the URL sets it too). Pub/sub
channels are not scoped by the database number, so apps that share a Redis must use
different prefixes.

Wire format
-----------
Every Redis message is one envelope, built once per publish:

```text
byte 0        flags: high nibble = format version (1),
              bit 0 = binary frame (else UTF-8 text), bit 1 = exclude id present,
              bit 2 = stream position present
[byte 1]      n = length of the exclude id (only when bit 1 is set)
[n bytes]     exclude id, UTF-8: "<origin node>/<subscriber id>[#<sequence>]"
[byte]        m = length of the position (only when bit 2 is set)
[m bytes]     the position, ASCII: "<epoch>:<offset>" (a topic with history)
rest          the payload: the text frame in UTF-8, or the binary frame as is
```

A ``#<sequence>`` suffix (the subscriber id may then be empty) marks a broadcast the
publishing process also delivered to its own clients itself, because it published while
its subscription was not confirmed by Redis: that process drops the copy Redis brings back.
Every other process ignores the whole exclude id (the node is not theirs), so the tag
needs no new format version.

So a text broadcast ``"hi"`` is ``b"\\x10hi"`` and a binary one ``b"\\x11\\x00\\x01"``. The
exclude id is qualified by the publishing backend's random node id, because subscriber
ids are only unique within one process: only the origin process skips that subscriber.
`encode_envelope` and `decode_envelope` implement the format (for publishers written
outside wsroute, or other languages). A publication to a topic with history is not a plain
PUBLISH: it is the script of `wsroute.broker.redis_streams`, which stores it and publishes
it with its position.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import random
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable
from typing import Any, Protocol
from urllib.parse import unquote_plus, urlsplit

import orjson
from redis.asyncio.connection import Connection, ConnectionPool, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError
from starlette.types import Message

from wsroute.broker import redis_presence, redis_streams
from wsroute.broker.base import BrokerBackend, Deliver
from wsroute.errors import BrokerUnavailable
from wsroute.history import HistoryPolicy, StreamPosition, StreamRead
from wsroute.presence import PRESENCE_EVENT, Member, PresenceDiff, PresenceStats

logger = logging.getLogger("wsroute")

_VERSION = 0x10
_BINARY = 0x01
_EXCLUDE = 0x02
# The channel of control commands (after the prefix; topics start with "/"), and the
# marker that stands for it among the subscribed topics.
_CONTROL_CHANNEL = b"control"
_CONTROL = "\x00control"

_POSITION = 0x04
_PRESENCE = 0x08
_KNOWN_FLAGS = _BINARY | _EXCLUDE | _POSITION | _PRESENCE

# How long a broadcast delivered locally waits for its copy from Redis (to drop it), at
# least: a publish may itself take up to `timeout`.
_ECHO_WINDOW = 30.0

# SUBSCRIBE many channels in a few commands of bounded size after a reconnect.
_BATCH = 512

# Sweep scripts one heartbeat runs at most (16 dead processes each): a bound on the loop.
_SWEEP_BATCHES = 64


def _envelope_parts(event: Message, exclude: str | None, extra: int = 0) -> tuple[bytes, bytes, bytes]:
    """The envelope's head (flags, with `extra`, and exclude id), its flags byte without
    exclude or position (what a stream stores), and the payload."""
    text: str | None = event.get("text")
    if text is not None:
        flags, payload = _VERSION, text.encode()
    else:
        flags, payload = _VERSION | _BINARY, bytes(event.get("bytes") or b"")
    plain = bytes((flags,))
    if exclude is None:
        return (bytes((flags | extra,)) if extra else plain), plain, payload
    token = exclude.encode()
    if len(token) > 255:
        raise ValueError(f"exclude id too long for the Redis envelope ({len(token)} > 255 bytes)")
    return bytes((flags | extra | _EXCLUDE, len(token))) + token, plain, payload


def encode_envelope(
    event: Message, exclude: str | None = None, position: StreamPosition | None = None
) -> bytes:
    """Encode an ASGI ``websocket.send`` event (and an optional exclude id and stream
    position) as one envelope.

    Raises `ValueError` when the exclude id is longer than 255 bytes in UTF-8.
    """
    if position is None:
        head, _, payload = _envelope_parts(event, exclude)
        return head + payload
    head, _, payload = _envelope_parts(event, exclude, _POSITION)
    at = f"{position.epoch}:{position.offset}".encode()
    return head + bytes((len(at),)) + at + payload


def decode_envelope(data: bytes) -> tuple[Message, str | None]:
    """Decode an envelope into the ASGI send event and the exclude id (or None).

    Raises `ValueError` for an empty message, an unknown format version or bad UTF-8.
    """
    event, exclude, _ = decode_positioned_envelope(data)
    return event, exclude


def decode_positioned_envelope(data: bytes) -> tuple[Message, str | None, StreamPosition | None]:
    """Decode an envelope into the ASGI send event, the exclude id and the stream position
    (each None when absent). Raises `ValueError` as `decode_envelope` does."""
    if not data:
        raise ValueError("empty message")
    flags = data[0]
    if flags & 0xF0 != _VERSION or flags & ~(_VERSION | _KNOWN_FLAGS):
        raise ValueError(f"unknown envelope header 0x{flags:02x}")
    start = 1
    exclude = None
    if flags & _EXCLUDE:
        if len(data) < 2 or len(data) < 2 + data[1]:
            raise ValueError("truncated exclude id")
        start = 2 + data[1]
        exclude = data[2:start].decode()
    position = None
    if flags & _POSITION:
        if len(data) <= start or len(data) < start + 1 + data[start]:
            raise ValueError("truncated stream position")
        end = start + 1 + data[start]
        epoch, _, offset = data[start + 1 : end].decode().rpartition(":")
        if not epoch or not offset.isdigit():
            raise ValueError("invalid stream position")
        position = StreamPosition(epoch, int(offset))
        start = end
    if flags & _PRESENCE:
        return {"type": PRESENCE_EVENT, "text": data[start:].decode()}, exclude, position
    if flags & _BINARY:
        return {"type": "websocket.send", "bytes": data[start:]}, exclude, position
    return {"type": "websocket.send", "text": data[start:].decode()}, exclude, position


def safe_url(url: str) -> str:
    """`url` with any password replaced by ``***`` (for error messages and logs)."""
    parts = urlsplit(url)
    if parts.password is not None:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        # The netloc is the first thing after "scheme://": replace it there, in place.
        url = url.replace(parts.netloc, f"{user}:***@{hostinfo}", 1)
    pairs = _query_items(url)
    if any(_query_key(item) == "password" for item in pairs):
        masked = [
            f"{item.partition('=')[0]}=***" if _query_key(item) == "password" else item for item in pairs
        ]
        url = _with_query(url, masked)
    return url


_OWN_PARAMS = ("channel_prefix", "presence_ttl")
"""Query parameters of the URL that are wsroute's settings, not redis-py's."""


def split_url(url: str) -> tuple[str, str | None]:
    """Take wsroute's ``channel_prefix`` (and a ``protocol`` this backend fixes) out of the URL.

    Returns the URL for redis-py and the prefix (None when the URL has none). Everything
    else is kept exactly as written: ``urlunsplit`` would turn ``unix:///run/redis.sock``
    into ``unix:/run/redis.sock``, which redis-py 8.2 and later refuse.
    """
    redis_url, own = _split_params(url)
    return redis_url, own.get("channel_prefix")


def _split_params(url: str) -> tuple[str, dict[str, str]]:
    """The URL without wsroute's own query parameters (and ``protocol``), and those."""
    items = _query_items(url)
    own: dict[str, str] = {}
    rest = []
    for item in items:
        key = _query_key(item)
        if key in _OWN_PARAMS:
            own[key] = unquote_plus(item.partition("=")[2])
        elif key != "protocol":
            rest.append(item)
    if len(rest) == len(items):
        return url, own
    return _with_query(url, rest), own


def _query_items(url: str) -> list[str]:
    """The raw ``key=value`` items of the URL's query, as written."""
    query = url.partition("#")[0].partition("?")[2]
    return [item for item in query.split("&") if item]


def _query_key(item: str) -> str:
    return unquote_plus(item.partition("=")[0])


def _with_query(url: str, items: list[str]) -> str:
    """`url` with its query replaced by `items` (none: no ``?``), the rest untouched."""
    head, hash_mark, fragment = url.partition("#")
    base = head.partition("?")[0]
    return base + ("?" + "&".join(items) if items else "") + hash_mark + fragment


class _Connection(Protocol):
    """The part of `redis.asyncio.connection.AbstractConnection` this backend drives."""

    @property
    def is_connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def disconnect(self, nowait: bool = False) -> None: ...

    def pack_command(self, *args: bytes | str | int) -> list[bytes]: ...

    async def send_packed_command(self, command: list[bytes], check_health: bool = True) -> None: ...

    async def read_response(self, disable_decoding: bool = False, timeout: float | None = None) -> Any: ...


def _can_read(conn: _Connection) -> Awaitable[bool]:
    # redis-py 8 renamed can_read_destructive (deprecated there) to can_read.
    method = getattr(conn, "can_read", None) or getattr(conn, "can_read_destructive")  # noqa: B009
    result: Awaitable[bool] = method()
    return result


_FAILURES = (RedisError, OSError, TimeoutError)
"""What a broken, refused, timed out or rejected Redis operation raises."""


def _sha(script: str) -> str:
    sha = _SHAS.get(script)
    if sha is None:
        sha = _SHAS[script] = hashlib.sha1(script.encode()).hexdigest()
    return sha


_SHAS: dict[str, str] = {}


async def _server_run(conn: _Connection) -> str:
    """The Redis server's ``run_id`` (``INFO server``): another after every restart. '' when
    Redis refuses the command (an ACL): then a restart is noticed only by lost keys."""
    await conn.send_packed_command(conn.pack_command(b"INFO", b"server"), check_health=False)
    try:
        info = await conn.read_response()
    except ResponseError:
        return ""
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return line.partition(":")[2].strip()
    return ""


async def _script(conn: _Connection, sha: str, script: str, args: tuple[bytes | str | int, ...]) -> Any:
    """Run a Lua script by its SHA, loading it with EVAL when Redis does not have it yet."""
    await conn.send_packed_command(conn.pack_command(b"EVALSHA", sha, *args), check_health=False)
    try:
        return await conn.read_response()
    except NoScriptError:
        # The error reply was read: the connection is in step for the EVAL.
        await conn.send_packed_command(conn.pack_command(b"EVAL", script, *args), check_health=False)
        return await conn.read_response()


class RedisBackend(BrokerBackend):
    """Moves broadcasts between processes through Redis pub/sub; history in Redis streams;
    presence in Redis hashes.

    :param url: ``redis://[[user]:password@]host:port/db``, ``rediss://…`` or
        ``unix:///path.sock``; redis-py's query parameters apply, plus ``channel_prefix``
        (a ``protocol`` parameter is ignored: the backend speaks RESP2).
    :param channel_prefix: prepended to each topic to make its Redis channel.
    :param connect_timeout: bound in seconds on connecting (and on the startup PING).
    :param timeout: bound on one publish, waiting for its turn included, and on how long
        `subscribe` waits for Redis to confirm the subscription.
    :param reconnect_min: first delay before the listener reconnects; it doubles per failed
        attempt up to `reconnect_max` (each delay is randomised between half and all of it).
    :param health_check_interval: after this many idle seconds the listener PINGs Redis; no
        answer within another interval counts as a lost connection (0 disables it).
    :param presence_ttl: seconds after which the presence members of a process that stopped
        heartbeating (killed, partitioned) are removed by the others, who publish their leaves
        (``?presence_ttl=`` in the URL too).
    :param redis_options: more keyword arguments for redis-py's connections
        (``ssl_ca_certs``, ``username``, ``client_name``…); values in the URL win.
    """

    supports_history = True
    supports_presence = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        channel_prefix: str = "wsroute:",
        connect_timeout: float = 2.0,
        timeout: float = 5.0,
        reconnect_min: float = 0.1,
        reconnect_max: float = 5.0,
        health_check_interval: float = 15.0,
        presence_ttl: float = 15.0,
        **redis_options: Any,
    ) -> None:
        redis_url, own = _split_params(url)
        url_prefix = own.get("channel_prefix")
        if "presence_ttl" in own:
            try:
                presence_ttl = float(own["presence_ttl"])
            except ValueError:
                given = own["presence_ttl"]
                raise ValueError(f"invalid presence_ttl in the Redis broker URL: {given!r}") from None
        try:
            parse_url(redis_url)  # a bad URL fails here, when the router is built
        except ValueError as exc:
            raise ValueError(f"invalid Redis broker URL {safe_url(url)!r}: {exc}") from None
        self.url = redis_url
        self.channel_prefix = channel_prefix if url_prefix is None else url_prefix
        self.safe_url = safe_url(url)
        self.node_id = secrets.token_hex(6)
        """Random id of this backend instance: qualifies exclude ids and names its connections."""
        self.client_name = f"wsroute-{self.node_id}"
        """The Redis ``CLIENT SETNAME`` of both connections (unless `redis_options` set one)."""
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = max(reconnect_max, reconnect_min)
        self.health_check_interval = health_check_interval
        self.presence_ttl = presence_ttl
        # This process's members (client id -> topic, member), to add again after a pause
        # long enough to be declared dead; and the task that heartbeats and sweeps.
        self._present: dict[str, tuple[str, Member]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        # No sweep while this process cannot reach Redis, nor within presence_ttl of its first
        # success after that: the others likely could not reach it either, and their
        # deadlines passed for that alone; they need a heartbeat's time to come back.
        self._unreachable = False
        self._sweep_from = 0.0
        # A re-add of this process's members that failed: the heartbeat tries it again.
        self._readd = False
        # Tasks that run on their own (answers to control commands, shared member reads):
        # held here so that they are not collected half-way.
        self._background: set[asyncio.Task[Any]] = set()
        # Member reads not yet written, by topic: a read asked for meanwhile shares the
        # waiting one (a join storm on a busy worker asks for the same list hundreds of times).
        self._waiting_reads: dict[str, asyncio.Task[str]] = {}
        self._redis_options = redis_options
        self._prefix = self.channel_prefix.encode()
        self._deliver: Deliver | None = None
        self._pool: ConnectionPool | None = None
        self._pub: _Connection | None = None
        # The run_id of the Redis server the publish connection reached (redis_streams).
        self._run_id = ""
        # Locks and the event are made again by `start`: a backend may be started in
        # another event loop after a stop (each TestClient block runs its own loop).
        self._pub_lock = asyncio.Lock()
        self._pub_down_since: float | None = None
        # Subscriptions: Redis channel -> topic, updated synchronously when a call arrives,
        # so whatever the listener subscribes after a reconnect is the latest wanted state.
        self._wanted: dict[bytes, str] = {}
        self._listener: asyncio.Task[None] | None = None
        self._sub: _Connection | None = None
        # Held while writing on the subscription connection: commands go out in call order.
        self._sub_lock = asyncio.Lock()
        self._sub_down_since: float | None = None
        self._ready: asyncio.Future[None] | None = None
        # Replies to (UN)SUBSCRIBE arrive in command order, one per channel: a caller knows
        # its SUBSCRIBE took effect once the count of replies reaches the count sent with it.
        self._sent = 0
        self._received = 0
        self._barriers: deque[tuple[int, asyncio.Future[None]]] = deque()
        # Live: Redis confirmed every SUBSCRIBE the listener sent when it (re)connected, so
        # it brings back whatever is published from now on. Until then a publish to a
        # wanted topic is also delivered here, tagged, and its copy from Redis is dropped.
        self._live = False
        self._live_target = 0
        # Whether the listener's current connection has been live (its backoff starts over).
        self._went_live = False
        self._echoes = _Echoes()
        self._echo_window = max(_ECHO_WINDOW, 2 * timeout)
        self._wake = asyncio.Event()
        self._warned_malformed = False

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        """Open the publish connection and PING; `BrokerUnavailable` (naming the URL) if that fails."""
        self._deliver = deliver
        self._pub_lock = asyncio.Lock()
        self._sub_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        # RESP2: subscribed-mode replies are plain arrays read in order with everything else
        # (RESP3 would route them through redis-py's push handlers).
        options: dict[str, Any] = {"client_name": self.client_name, **self._redis_options, "protocol": 2}
        try:
            pool = ConnectionPool.from_url(self.url, **options)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid Redis broker URL {self.safe_url}: {exc}") from exc
        # Timeouts, retries and reconnection are this backend's job: redis-py's own would
        # retry behind our back (hiding outages) or time out an idle subscription read.
        pool.connection_kwargs.update(
            socket_timeout=None,
            socket_connect_timeout=self.connect_timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            decode_responses=False,
        )
        if issubclass(pool.connection_class, Connection):  # TCP or TLS, not a unix socket
            pool.connection_kwargs.setdefault("socket_keepalive", True)
        self._pool = pool
        conn = self._new_connection()
        try:
            async with asyncio.timeout(self.connect_timeout):
                await conn.connect()
                await conn.send_packed_command(conn.pack_command("PING"), check_health=False)
                await conn.read_response()
                self._run_id = await _server_run(conn)
        except _FAILURES as exc:
            with contextlib.suppress(*_FAILURES):
                await conn.disconnect(nowait=True)
            await pool.aclose()
            self._pool = None
            reason = _describe(exc, self.connect_timeout)
            message = f"cannot connect to the Redis broker at {self.safe_url}: {reason}"
            raise BrokerUnavailable(message) from exc
        self._pub = conn

    async def stop(self) -> None:
        """Cancel the listener and close both connections (closing drops the subscriptions)."""
        for task in (self._listener, self._heartbeat):
            if task is not None:
                task.cancel()
                await asyncio.wait({task})
        self._listener = self._heartbeat = None
        self._present.clear()
        self._wanted.clear()
        self._live = False
        self._echoes = _Echoes()
        self._release_waiters()
        conn, self._pub = self._pub, None
        if conn is not None:
            async with self._pub_lock:
                with contextlib.suppress(*_FAILURES):
                    await conn.disconnect()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()
        self._deliver = None
        self._sub_down_since = self._pub_down_since = None

    def _new_connection(self) -> _Connection:
        assert self._pool is not None
        # make_connection builds the class the URL asks for (TCP, TLS or unix socket).
        make: Callable[[], _Connection] = self._pool.make_connection
        return make()

    # --- publish ------------------------------------------------------------------------

    async def publish(self, topic: str, event: Message, exclude: str | None = None) -> None:
        """PUBLISH one envelope; `BrokerUnavailable` (naming the URL) if Redis does not take it.

        A publish that failed mid-way (the connection broke after the command was written)
        may still have been delivered; one that raised never reached a subscriber otherwise.
        """
        await self._publish(topic, event, exclude, None)

    async def publish_with_history(
        self, topic: str, event: Message, exclude: str | None, policy: HistoryPolicy
    ) -> StreamPosition:
        """Assign the offset, append to the topic's stream and PUBLISH with the position, in
        one script (`redis_streams`); fails as `publish` does."""
        position = await self._publish(topic, event, exclude, policy)
        assert position is not None
        return position

    async def read_history(
        self,
        topic: str,
        policy: HistoryPolicy,
        *,
        after: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> StreamRead:
        """Read the topic's stream in one script (see `BrokerBackend.read_history`)."""
        reply = await self._run(
            "read history from",
            redis_streams.READ_SCRIPT,
            lambda: redis_streams.read_args(self._prefix, topic, policy, after, limit, reverse, self._run_id),
        )
        return redis_streams.parse_read(reply)

    async def _run(
        self,
        what: str,
        script: str | bytes,
        args: tuple[bytes | str | int, ...] | Callable[[], tuple[bytes | str | int, ...]],
        on_turn: Callable[[], None] | None = None,
    ) -> Any:
        """Run a Lua script (or, given bytes, the command ``script *args``) on the publish
        connection, in turn with publishes; `BrokerUnavailable` saying what failed to `what`.
        `on_turn` is called when this command's turn comes, right before it is written;
        `args` may be a function, called once the connection is ready (it may read
        `_run_id`)."""
        conn = self._pub
        if conn is None:
            raise BrokerUnavailable(f"the Redis broker at {self.safe_url} is not started")
        try:
            async with asyncio.timeout(self.timeout), self._pub_lock:
                if on_turn is not None:
                    on_turn()
                try:
                    await self._ready_to_publish(conn)
                    if callable(args):
                        args = args()
                    if isinstance(script, bytes):
                        await conn.send_packed_command(conn.pack_command(script, *args), check_health=False)
                        reply = await conn.read_response()
                    else:
                        reply = await _script(conn, _sha(script), script, args)
                    self._reached()
                    return reply
                except BaseException:
                    with contextlib.suppress(*_FAILURES):
                        await conn.disconnect(nowait=True)
                    raise
        except _FAILURES as exc:
            self._unreached(exc)
            raise BrokerUnavailable(
                f"cannot {what} the Redis broker at {self.safe_url}: {_describe(exc, self.timeout)}"
            ) from exc

    def _unreached(self, exc: BaseException) -> None:
        if not isinstance(exc, ResponseError):  # Redis answered: it was reached
            self._unreachable = True

    def _reached(self) -> None:
        if self._unreachable:
            self._unreachable = False
            self._sweep_from = time.monotonic() + self.presence_ttl

    def _sweeping(self) -> bool:
        """Whether this process judges others dead now: not while it cannot reach Redis, nor
        within `presence_ttl` of reaching it again (an outage stops every heartbeat, and a
        process that sweeps first would announce the live ones as gone)."""
        return not self._unreachable and time.monotonic() >= self._sweep_from

    # --- presence -------------------------------------------------------------------------

    @property
    def presence_ttl(self) -> float:
        """Seconds after which the members of a process that stopped heartbeating are removed
        (it heartbeats every third of that); ``?presence_ttl=`` in the URL sets it too.
        Setting it checks it, as the constructor does; the next heartbeat uses it."""
        return self._presence_ttl

    @presence_ttl.setter
    def presence_ttl(self, seconds: float) -> None:
        # A zero or negative TTL would sweep live workers' members; inf/nan never sweep.
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError(f"presence_ttl must be a finite number of seconds > 0, not {seconds}")
        self._presence_ttl = seconds

    def _ttl_ms(self) -> int:
        return max(1, int(self.presence_ttl * 1000))

    async def presence_add(self, topic: str, member: Member) -> None:
        """Store the member, registered under this process (see `redis_presence`)."""
        await self._presence_write(topic, (member,), (), None)

    async def presence_remove(self, topic: str, client_id: str) -> None:
        """Remove the member (and its registration under this process)."""
        await self._presence_write(topic, (), (client_id,), None)

    async def presence_update(self, topic: str, diff: PresenceDiff) -> None:
        """Store a batch of joins and leaves and publish its diff, in one script."""
        envelope = bytes((_VERSION | _PRESENCE,)) + diff.encode().encode()
        await self._presence_write(topic, diff.joins.values(), diff.leaves, envelope)

    async def _presence_write(
        self, topic: str, joins: Iterable[Member], leaves: Iterable[str], envelope: bytes | None
    ) -> None:
        """Store `joins` and remove the client ids `leaves` in one script, and PUBLISH the
        `envelope` (a diff) there too unless it is None."""
        members, users = redis_presence.topic_keys(self._prefix, topic)
        node = redis_presence.node_key(self._prefix, self.node_id)
        nodes = redis_presence.nodes_key(self._prefix)
        joined = list(joins)
        args: list[bytes | str | int] = [4, members, users, node, nodes, topic, self.node_id, self._ttl_ms()]
        args.append(len(joined))
        for member in joined:
            args += (member.client_id, redis_presence.encode_member(member))
        left = list(leaves)
        args += left
        args += (b"", b"") if envelope is None else (self._prefix + topic.encode(), envelope)
        # What this process means to hold, before the write: if the reply is lost, the
        # heartbeat (which re-adds `_present` when this node was swept) still holds it right.
        for client_id in left:
            self._present.pop(client_id, None)
        for member in joined:
            self._present[member.client_id] = (topic, member)
        if joined and self._heartbeat is None:
            self._heartbeat = asyncio.get_running_loop().create_task(
                self._beat(), name=f"wsroute redis presence {self.safe_url}"
            )
        registered = await self._run("store the presence of", redis_presence.UPDATE_SCRIPT, tuple(args))
        if registered and len(self._present) > len(joined):
            # This process was not registered: Redis lost its members (a restart without its
            # data) or swept them. Store the others again now; the heartbeat, finding the
            # process registered by this join, would not.
            self._in_background(self._add_again({member.client_id for member in joined}))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` on its own, held until it ends (not collected half-way)."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _add_again(self, skip: Collection[str] = ()) -> None:
        """Store this process's members again, announced as joins (the others were told
        they left, or their lists were read without them), one batch per topic."""
        diffs: dict[str, PresenceDiff] = {}
        for client_id, (topic, member) in list(self._present.items()):
            if client_id not in skip:
                diffs.setdefault(topic, PresenceDiff()).join(member)
        for topic, diff in diffs.items():
            # Looked up again: a member may have left, or changed its info, meanwhile.
            for client_id in list(diff.joins):
                entry = self._present.get(client_id)
                if entry is None:
                    del diff.joins[client_id]
                else:
                    diff.joins[client_id] = entry[1]
            if diff:
                try:
                    await self.presence_update(topic, diff)
                except BrokerUnavailable as exc:
                    # Registered already (by the join or heartbeat that found it lost), so the
                    # heartbeat would not know to: it is told to try again.
                    self._readd = True
                    logger.warning("members not stored again, retried with the next heartbeat: %s", exc)
                    return
        self._readd = False

    async def presence_members(self, topic: str) -> list[Member]:
        """Every member, once the members of dead processes are swept (one script)."""
        return redis_presence.parse_members(await self._read_state(topic))

    async def presence_state(self, topic: str) -> str:
        """The members' JSON as the members script built it from the stored values: no
        parse and no `Member` per member (a join storm with presence reads it per joiner)."""
        return await self._read_state(topic)

    def _read_state(self, topic: str) -> asyncio.Future[str]:
        """The JSON of the topic's members, read from Redis. Reads of one topic asked for
        while an earlier one still waits for its turn on the connection share it: it is
        written after each of them asked, so it sees what each read of its own would."""
        read = self._waiting_reads.get(topic)
        if read is None:
            # Listed before it can be written: `_read_members` always waits once first.
            read = asyncio.get_running_loop().create_task(self._read_members(topic))
            self._waiting_reads[topic] = read
            # Whoever awaits it may be gone by the time a failure arrives: not an error to log.
            read.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._background.add(read)
            read.add_done_callback(self._background.discard)
        # Shielded: one sharer cancelled (its socket closed) does not cancel the others' read.
        return asyncio.shield(read)

    async def _read_members(self, topic: str) -> str:
        read = asyncio.current_task()

        def written() -> None:  # from now on a new asker needs a read of its own
            if self._waiting_reads.get(topic) is read:
                del self._waiting_reads[topic]

        try:
            # Its turn may come at once (a free connection), and an eager task factory would
            # run this far before the caller lists the task: wait once, so `written` unlists it.
            await asyncio.sleep(0)
            members, _ = redis_presence.topic_keys(self._prefix, topic)
            sweep = b"1" if self._sweeping() else b"0"
            args = (2, members, redis_presence.nodes_key(self._prefix), self._prefix, sweep)
            script = redis_presence.MEMBERS_SCRIPT
            swept, state = await self._run("read the presence of", script, args, written)
        finally:
            written()
        await self._announce_swept(swept)
        return bytes(state).decode()  # once, however many share the read

    async def presence_stats(self, topic: str) -> PresenceStats:
        """Counted by Redis (``HLEN`` of the members and of the users), in the script that
        sweeps the dead processes' members first."""
        members, users = redis_presence.topic_keys(self._prefix, topic)
        sweep = b"1" if self._sweeping() else b"0"
        args = (3, members, users, redis_presence.nodes_key(self._prefix), self._prefix, sweep)
        swept, clients, distinct = await self._run("count the presence of", redis_presence.STATS_SCRIPT, args)
        await self._announce_swept(swept)
        return PresenceStats(int(clients), int(distinct))

    async def publish_presence(self, topic: str, diff: str) -> None:
        """PUBLISH the diff on the topic's channel, flagged as presence."""
        channel = self._prefix + topic.encode()
        data = bytes((_VERSION | _PRESENCE,)) + diff.encode()
        await self._run("publish presence to", b"PUBLISH", (channel, data))

    # --- control ----------------------------------------------------------------------------

    async def publish_control(self, command: str) -> int:
        """PUBLISH the command to every process serving connections (``PUBLISH`` says how
        many got it), then sum their answers, pushed to a list of this command's own, until
        all arrived or `timeout` passed."""
        key = self._prefix + b"control-reply:" + secrets.token_hex(8).encode()
        message: dict[str, str] = {"reply": key.decode(), "command": command}
        channel = self._prefix + _CONTROL_CHANNEL
        local = 0
        if not self._live and self.control is not None:
            # This process's own subscription is down (or not confirmed yet): the command
            # may not reach its own clients through Redis, so it runs here, and a copy that
            # does arrive is answered 0 without running again (`ran`).
            local = await self.control(command)
            message["ran"] = self.node_id
        data = orjson.dumps(message)
        receivers = int(await self._run("send a command to", b"PUBLISH", (channel, data)))
        if self._sub_down_since is not None:
            self._wake.set()  # Redis answers again: reconnect the subscription now
        deadline = time.monotonic() + self.timeout
        answers: list[bytes] = []
        try:
            while receivers:
                answers = await self._run("read answers from", b"LRANGE", (key, 0, -1))
                if len(answers) >= receivers:
                    break
                if time.monotonic() > deadline:
                    logger.warning(
                        "Redis broker at %s: %d of %d processes answered a control command within %g s",
                        self.safe_url, len(answers), receivers, self.timeout,
                    )
                    break
                await asyncio.sleep(0.01)
        finally:
            with contextlib.suppress(BrokerUnavailable):
                await self._run("clean up after", b"DEL", (key,))
        return local + sum(int(answer) for answer in answers)

    def _on_control(self, data: bytes) -> None:
        self._in_background(self._answer_control(data))

    async def _answer_control(self, data: bytes) -> None:
        try:
            message = orjson.loads(data)
            reply, command = message["reply"].encode(), message["command"]
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            logger.warning("Redis broker at %s: ignored a malformed control message", self.safe_url)
            return
        count = 0
        try:
            if self.control is not None and message.get("ran") != self.node_id:
                count = await self.control(command)
        except Exception:
            logger.exception("a control command failed")
        try:
            await self._run("answer a command on", b"RPUSH", (reply, count))
            await self._run("answer a command on", b"PEXPIRE", (reply, int(self.timeout * 2000)))
        except BrokerUnavailable as exc:
            logger.warning("Redis broker at %s: could not answer a control command: %s", self.safe_url, exc)

    async def sweep(self) -> int:
        """Remove the members of processes past their heartbeat deadline and publish their
        leaves; how many were removed. (Reads sweep too, in their own script.)

        A script takes 16 dead processes at most; the sweep runs batches until none is left
        (up to 64 batches, then the next heartbeat goes on), so the crash bound of the
        presence docs holds when a whole host of workers dies at once."""
        args = (1, redis_presence.nodes_key(self._prefix), self._prefix)
        removed = 0
        for _ in range(_SWEEP_BATCHES):
            reply = await self._run("sweep the presence of", redis_presence.SWEEP_SCRIPT, args)
            removed += await self._announce_swept(reply[1:])
            if not reply[0]:
                break
        return removed

    async def _announce_swept(self, reply: Any) -> int:
        """Publish a leave diff per topic of what a sweep removed; how many members it was.
        A diff that cannot be published is logged, not raised: the sweep is done (its
        members are gone from Redis either way), and the read that swept is still good."""
        removed = redis_presence.parse_sweep(reply)
        for topic, members in removed.items():
            diff = PresenceDiff()
            for member in members:
                diff.leave(member)
            try:
                await self.publish_presence(topic, diff.encode())
            except BrokerUnavailable as exc:
                logger.warning("leaves of %d dead members of %s not announced: %s", len(members), topic, exc)
        return sum(map(len, removed.values()))

    async def _beat(self) -> None:
        """Heartbeat while this process has members, sweep the dead ones, every ttl/3."""
        nodes = redis_presence.nodes_key(self._prefix)
        while True:
            try:
                if self._present:
                    args = (1, nodes, self.node_id, self._ttl_ms())
                    added = await self._run("heartbeat to", redis_presence.HEARTBEAT_SCRIPT, args)
                    if added or self._readd:
                        # Not registered: declared dead meanwhile (a long pause), or Redis
                        # lost the data; either way the others no longer list our members.
                        await self._add_again()
                if self._sweeping():
                    await self.sweep()
            except BrokerUnavailable as exc:
                logger.warning("Redis broker at %s: presence heartbeat failed: %s", self.safe_url, exc)
            except Exception:
                logger.exception("presence heartbeat failed")
            await asyncio.sleep(self.presence_ttl / 3)

    async def _publish(
        self, topic: str, event: Message, exclude: str | None, policy: HistoryPolicy | None
    ) -> StreamPosition | None:
        conn = self._pub
        if conn is None:
            raise BrokerUnavailable(f"the Redis broker at {self.safe_url} is not started")
        channel = self._prefix + topic.encode()
        echo: int | None = None
        position: StreamPosition | None = None
        try:
            async with asyncio.timeout(self.timeout), self._pub_lock:
                try:
                    await self._ready_to_publish(conn)
                    token = None if exclude is None else f"{self.node_id}/{exclude}"
                    if not self._live and self._deliver is not None and channel in self._wanted:
                        # Decided just before the write: only SUBSCRIBEs confirmed before it
                        # are sure to be ahead of this PUBLISH in Redis.
                        echo = self._echoes.expect(self._echo_window)
                        token = f"{self.node_id}/{exclude or ''}#{echo}"
                    if policy is None:
                        data = encode_envelope(event, token)
                        command = conn.pack_command(b"PUBLISH", channel, data)
                        await conn.send_packed_command(command, check_health=False)
                        await conn.read_response()
                    else:
                        head, flags, payload = _envelope_parts(event, token, _POSITION)
                        args = redis_streams.publish_args(
                            self._prefix, topic, channel, head, flags, payload, policy, self._run_id
                        )
                        reply = await _script(
                            conn, _sha(redis_streams.PUBLISH_SCRIPT), redis_streams.PUBLISH_SCRIPT, args
                        )
                        position = redis_streams.parse_position(reply)
                except BaseException:
                    # Half written or reply unread: this connection is out of step.
                    if echo is not None:
                        self._echoes.forget(echo)
                    with contextlib.suppress(*_FAILURES):
                        await conn.disconnect(nowait=True)
                    raise
        except _FAILURES as exc:
            if self._pub is None:
                raise BrokerUnavailable(f"the Redis broker at {self.safe_url} was stopped") from exc
            self._unreached(exc)
            if self._pub_down_since is None:
                self._pub_down_since = time.monotonic()
                logger.warning(
                    "Redis broker at %s: cannot publish (%s); broadcasts raise BrokerUnavailable "
                    "until it is reachable", self.safe_url, _describe(exc, self.timeout),
                )
            raise BrokerUnavailable(
                f"cannot publish to the Redis broker at {self.safe_url}: {_describe(exc, self.timeout)}"
            ) from exc
        self._reached()
        if self._pub_down_since is not None:
            logger.warning(
                "Redis broker at %s: publishing again after %.1f s", self.safe_url,
                time.monotonic() - self._pub_down_since,
            )
            self._pub_down_since = None
        echoes = self._echoes
        if echoes.pending:
            echoes.prune(self._echo_window)
        if echo is not None and echoes.delivered_here(echo) and self._deliver is not None:
            # Redis may not bring this accepted message back to this process (its
            # subscription was not confirmed): deliver it here, once.
            self._deliver(topic, event, exclude, position)
        if self._sub_down_since is not None:
            # Redis is back: let the listener retry now rather than at the end of its backoff.
            self._wake.set()
        return position

    async def _ready_to_publish(self, conn: _Connection) -> None:
        if conn.is_connected:
            try:
                # Readable between requests means the server closed it (EOF) while idle,
                # e.g. Redis restarted: reconnect rather than fail the next broadcast.
                stale = await _can_read(conn)
            except _FAILURES:
                stale = True
            if not stale:
                return
            await conn.disconnect(nowait=True)
        await conn.connect()
        # Read again on every connection: a Redis that restarted meanwhile is another run.
        self._run_id = await _server_run(conn)

    # --- subscriptions --------------------------------------------------------------------

    async def subscribe(self, topic: str) -> None:
        """Subscribe to the topic's channel; returns once Redis confirmed it (bounded by `timeout`).

        During an outage it returns at once: the listener subscribes when Redis is back.
        """
        if self._deliver is None:
            raise RuntimeError("RedisBackend.subscribe called before start()")
        channel = self._prefix + topic.encode()
        self._wanted[channel] = topic
        if self._listener is None:
            # A process serving connections hears control commands (Broker.disconnect…).
            self._wanted[self._prefix + _CONTROL_CHANNEL] = _CONTROL
            loop = asyncio.get_running_loop()
            # Created here, not in the task: this very call must wait for the first connection.
            self._ready = loop.create_future()
            self._listener = loop.create_task(self._listen(), name=f"wsroute redis listener {self.safe_url}")
        # On the listener's connection whenever there is one, even before Redis confirmed
        # its own SUBSCRIBE: that one was written before this channel was wanted.
        sent = await self._send_subscription(b"SUBSCRIBE", channel)
        if sent is None:
            if self._sub_down_since is not None:
                return
            # The listener is connecting; its first SUBSCRIBE will include this channel.
            ready = self._ready
            if ready is None:
                return
            await asyncio.wait({ready}, timeout=self.timeout)
            if self._sub is None:
                return
            sent = self._sub, self._sent
        await self._confirmed(*sent)

    def receiving(self, topic: str) -> bool:
        """Whether the topic's channel is subscribed on a listener connection Redis confirmed
        (False during an outage of that connection, until it is back)."""
        return (
            self._sub is not None
            and self._sub_down_since is None
            and self._prefix + topic.encode() in self._wanted
        )

    async def unsubscribe(self, topic: str) -> None:
        """Unsubscribe from the topic's channel (without waiting for Redis to confirm)."""
        channel = self._prefix + topic.encode()
        if self._wanted.pop(channel, None) is not None:
            await self._send_subscription(b"UNSUBSCRIBE", channel)

    async def _send_subscription(self, command: bytes, channel: bytes) -> tuple[_Connection, int] | None:
        """Write (UN)SUBSCRIBE on the live connection, in call order; the connection and the
        reply count that confirms it.

        None when there is no live connection: the wanted set already records the change
        and the listener applies it when it (re)connects.
        """
        async with self._sub_lock:
            conn = self._sub
            if conn is None or not conn.is_connected:
                return None
            self._sent += 1
            target = self._sent
            try:
                async with asyncio.timeout(self.timeout):
                    await conn.send_packed_command(conn.pack_command(command, channel), check_health=False)
            except _FAILURES:
                # The connection is broken (redis-py closed it): the listener notices,
                # reconnects and subscribes again to everything wanted.
                return None
            return conn, target

    async def _confirmed(self, conn: _Connection, target: int) -> None:
        """Wait (bounded) until `target` replies arrived on `conn`; at once if `conn` is gone."""
        # Counts restart with each connection: a target from a lost one means nothing.
        if self._sub is not conn or self._received >= target:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._barriers.append((target, waiter))
        try:
            await asyncio.wait({waiter}, timeout=self.timeout)
        finally:
            if not waiter.done():
                waiter.cancel()

    def _release_waiters(self) -> None:
        """Wake everyone waiting on the current connection (it is gone or going)."""
        barriers, self._barriers = self._barriers, deque()
        for _, waiter in barriers:
            if not waiter.done():
                waiter.set_result(None)
        ready, self._ready = self._ready, None
        if ready is not None and not ready.done():
            ready.set_result(None)

    # --- the listener ---------------------------------------------------------------------

    async def _listen(self) -> None:
        """Connect, subscribe to everything wanted, read messages; on failure back off and retry."""
        loop = asyncio.get_running_loop()
        delay = self.reconnect_min
        while True:
            if self._ready is None:
                self._ready = loop.create_future()
            ready = self._ready
            self._went_live = False  # until Redis confirms every SUBSCRIBE of this connection
            conn = self._new_connection()
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await conn.connect()
                async with self._sub_lock:
                    self._sent = self._received = 0
                    channels = list(self._wanted)
                    for i in range(0, len(channels), _BATCH):
                        batch = channels[i : i + _BATCH]
                        # Bounded: a Redis that stops reading would hold this lock, and every
                        # subscribe() waiting on it, for ever once the socket buffers fill.
                        try:
                            async with asyncio.timeout(self.timeout):
                                await conn.send_packed_command(conn.pack_command(b"SUBSCRIBE", *batch), False)
                        except TimeoutError:
                            raise TimeoutError(f"SUBSCRIBE not read within {self.timeout:g} s") from None
                        self._sent += len(batch)
                    self._live_target = self._sent
                    self._live = self._sent == 0
                    self._sub = conn
                    if not ready.done():
                        ready.set_result(None)
                if self._live:
                    self._now_live()
                await self._read(conn)
            except Exception as exc:
                if self._sub_down_since is None:
                    self._sub_down_since = time.monotonic()
                    logger.warning(
                        "Redis broker at %s: subscription connection lost (%s); broadcasts do not "
                        "reach this process until it is back; reconnecting",
                        self.safe_url, _describe(exc, self.connect_timeout),
                        exc_info=not isinstance(exc, _FAILURES),
                    )
            finally:
                self._sub = None
                self._live = False
                self._release_waiters()
                with contextlib.suppress(*_FAILURES):
                    await conn.disconnect(nowait=True)
            if self._went_live:
                # It worked until it failed: back off from the start. A connection whose
                # SUBSCRIBE Redis refuses (an ACL without channel rights) never gets here.
                delay = self.reconnect_min
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(random.uniform(delay / 2, delay)):
                    await self._wake.wait()
            delay = min(delay * 2, self.reconnect_max)

    async def _read(self, conn: _Connection) -> None:
        """Read until the connection fails: deliver messages, count (UN)SUBSCRIBE replies."""
        # None: no read timeout at all (socket_timeout is None on these connections).
        interval = self.health_check_interval or None
        pinged = False
        wanted = self._wanted
        while True:
            reply = await conn.read_response(timeout=interval)
            if reply is None:
                # Idle for a whole interval. A PING unanswered for another one means the
                # peer is gone without closing the TCP connection (host down, partition).
                if pinged:
                    raise TimeoutError(f"no reply to PING within {interval} s")
                async with asyncio.timeout(self.timeout), self._sub_lock:
                    await conn.send_packed_command(conn.pack_command(b"PING"), check_health=False)
                pinged = True
                continue
            pinged = False
            if not isinstance(reply, list):
                continue  # "PONG" outside subscribed mode
            kind = reply[0]
            if kind == b"message":
                topic = wanted.get(reply[1])
                if topic is _CONTROL:
                    self._on_control(reply[2])
                elif topic is not None:
                    self._on_message(topic, reply[2])
            elif kind == b"subscribe" or kind == b"unsubscribe":
                self._received += 1
                received = self._received
                if received >= self._live_target and not self._live:
                    self._live = True
                    self._now_live()
                barriers = self._barriers
                while barriers and barriers[0][0] <= received:
                    waiter = barriers.popleft()[1]
                    if not waiter.done():
                        waiter.set_result(None)

    def _now_live(self) -> None:
        """Redis confirmed every SUBSCRIBE of the listener's connection."""
        self._went_live = True
        if self._sub_down_since is not None:
            logger.warning(
                "Redis broker at %s: subscription connection restored after %.1f s; "
                "%d topic(s) subscribed again",
                self.safe_url, time.monotonic() - self._sub_down_since, len(self._wanted),
            )  # fmt: skip
            self._sub_down_since = None

    def _on_message(self, topic: str, data: bytes) -> None:
        try:
            event, exclude, position = decode_positioned_envelope(data)
        except ValueError as exc:
            if not self._warned_malformed:
                self._warned_malformed = True
                logger.warning(
                    "Redis broker at %s: dropped a message on %r that is not a wsroute envelope (%s); "
                    "further ones are dropped silently", self.safe_url, topic, exc,
                )
            return
        if exclude is not None:
            node, _, subscriber = exclude.partition("/")
            if node == self.node_id:
                subscriber, tagged, seq = subscriber.partition("#")
                if tagged and seq.isdigit() and not self._echoes.arrived(int(seq)):
                    return  # this process already delivered it itself
                exclude = subscriber or None
            else:
                # Subscriber ids are unique per process only: exclude in the origin process alone.
                exclude = None
        assert self._deliver is not None
        try:
            self._deliver(topic, event, exclude, position)
        except Exception:
            logger.exception("delivering a broadcast on %r failed", topic)


class _Echoes:
    """Broadcasts this process published while its subscription was not live.

    Each one is delivered exactly once here: by this process itself after PUBLISH
    returns, unless the copy from Redis arrived first (then that copy is delivered and
    the publisher skips it); a copy arriving after the local delivery is dropped.
    """

    _PENDING, _ARRIVED, _HERE = 0, 1, 2

    def __init__(self) -> None:
        self._seq = 0
        self._state: dict[int, int] = {}
        self._order: deque[tuple[float, int]] = deque()

    @property
    def pending(self) -> bool:
        """True while some broadcast still waits for its copy."""
        return bool(self._order)

    def prune(self, window: float) -> None:
        """Forget broadcasts older than `window` seconds: Redis never brought them back."""
        order = self._order
        limit = time.monotonic() - window
        while order and order[0][0] < limit:
            self._state.pop(order.popleft()[1], None)

    def expect(self, window: float) -> int:
        """A new sequence number for a broadcast about to be published."""
        self.prune(window)
        self._seq += 1
        self._state[self._seq] = self._PENDING
        self._order.append((time.monotonic(), self._seq))
        return self._seq

    def forget(self, seq: int) -> None:
        """The publish failed: a copy that still arrives is delivered as usual."""
        self._state.pop(seq, None)

    def delivered_here(self, seq: int) -> bool:
        """PUBLISH returned: True when the publisher must deliver it locally now."""
        if self._state.get(seq) == self._ARRIVED:
            del self._state[seq]
            return False
        self._state[seq] = self._HERE
        return True

    def arrived(self, seq: int) -> bool:
        """Redis brought it back: True when this copy is to be delivered."""
        state = self._state.get(seq)
        if state == self._HERE:
            del self._state[seq]
            return False
        if state == self._PENDING:
            self._state[seq] = self._ARRIVED
        return True


def _describe(exc: BaseException, timeout: float) -> str:
    text = str(exc) or (f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
