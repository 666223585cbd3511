"""The budgets the runtime is shaped around, guarded so that a clean-up which breaks one fails
CI. These are not benchmarks (``bench/`` measures, docs/benchmarks.md reports): each check
is deterministic, runs in-process in well under a second, and its ceiling sits about 1.5 times
above what it measures today, so only a real regression trips it.

* **Memory per idle connection.** A server holds thousands of idle sockets, so what one
  costs is most of its memory: docs/benchmarks.md reports ~20.9 KiB of RSS per idle
  connection under uvicorn, and ~3.5 KB of Python objects by tracemalloc in wsroute,
  asyncio and the two FastAPI frames above it (uvicorn's own excluded). Measured here that same
  way (tracemalloc, the app driven by plain ASGI calls), for a dedicated and for a
  multiplexed socket; and the objects each one adds for the cycle collector to walk.
* **No reflection per event.** A handler's signature, type hints and pydantic adapters are
  analyzed once, at registration; the message path calls a prepared plan. A message (or a
  further connection) that reaches `inspect.signature`, `typing.get_type_hints`,
  ``TypeAdapter(...)`` or the analyzer would cost microseconds per message, against the
  ~1.4 µs of wsroute's own Python per echoed message that docs/benchmarks.md reports.
  The route table computes each path's match once and serves it from a cache after.
* **Slots.** Sessions, sockets, outboxes, rate-limit buckets and channels live one
  (or more) per idle connection; an instance ``__dict__`` on any of them, for example a
  subclass that forgets ``__slots__``, grows every idle connection without failing anything
  else.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import inspect
import tracemalloc
import typing
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel, TypeAdapter
from starlette.types import Message

from support.asgi import AsgiServer, lifespan, websocket_scope
from wsroute import Channel, Guard, HandshakeRequest, WebSocketStatus, WsRouter
from wsroute.connection import BaseConnection, Connection
from wsroute.injection import Analyzer
from wsroute.multiplex import MultiplexConnection
from wsroute.multiplex.codec import SEP, encode_subscribe
from wsroute.multiplex.connection import _TopicFramer
from wsroute.outbox import Outbox
from wsroute.ratelimit import TokenBucket
from wsroute.routes import Handler
from wsroute.session import Session
from wsroute.testing import eventually

MUX = ("rocket-multiplex",)


# --- memory per idle connection -------------------------------------------------------------

IDLE_CONNECTIONS = 200
# Today 3,253 B: the connection's objects and the two frames above it (FastAPI's and
# Starlette's `__call__`), measured as bench/micro.py's memory part does.
DEDICATED_IDLE_BYTES = 5_300
# Today 3,645 B: a dedicated socket's, plus the topic table, the first topic's name and its
# framer.
MULTIPLEXED_IDLE_BYTES = 6_300
# Objects the cycle collector tracks per idle connection: the task, its frames and the
# connection's own objects, and this harness's receive closure (a server has its own); the
# scopes are built before counting starts, as a server builds its own. Today 17 dedicated,
# 19 multiplexed. Every full collection walks each of them, so held-open
# sockets cost handshakes CPU (docs/benchmarks.md); the ceilings leave room for three more.
DEDICATED_IDLE_OBJECTS = 20
MULTIPLEXED_IDLE_OBJECTS = 22


class User(Guard):
    """A cheap guard, built once per connection and kept in its local cache (as bench's)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    async def from_request(cls, request: HandshakeRequest) -> User:
        return cls(request.query_params.get("user", "anon"))


def idle_app() -> FastAPI:
    """bench's ``/idle`` route: a typed handler with a channel and a guard, on FastAPI."""
    ws = WsRouter()

    @ws.message("/idle")
    async def idle(data: str, channel: Channel, user: User) -> None:
        await channel.send(data)

    app = FastAPI()
    ws.install(app)
    return app


async def idle_cost(app: FastAPI, subprotocols: tuple[str, ...]) -> tuple[float, float]:
    """tracemalloc's bytes, and objects the cycle collector tracks, per accepted connection,
    for `IDLE_CONNECTIONS` left idle."""
    never: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    accepted = 0

    async def send(message: Message) -> None:
        nonlocal accepted
        if message["type"] == "websocket.accept":
            accepted += 1

    def make_receive() -> Callable[[], Any]:
        first = True

        async def receive() -> Message:
            nonlocal first
            if first:
                first = False
                return {"type": "websocket.connect"}
            return await never

        return receive

    # Made before tracing starts: a server's scope is its own, not the app's.
    scopes = [
        websocket_scope("/idle", subprotocols, query_string=b"user=budget") for _ in range(IDLE_CONNECTIONS)
    ]
    tracing = tracemalloc.is_tracing()
    gc.collect()
    objects_before = len(gc.get_objects())
    if not tracing:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tasks = [asyncio.ensure_future(app(scope, make_receive(), send)) for scope in scopes]
        async with asyncio.timeout(30):
            while accepted < IDLE_CONNECTIONS:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        # Let every join and subscription settle into the idle state.
        await asyncio.sleep(0.05)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        if not tracing:
            tracemalloc.stop()
    objects = len(gc.get_objects()) - objects_before
    never.set_result({"type": "websocket.disconnect", "code": 1001, "reason": ""})
    await asyncio.gather(*tasks)
    return (after - before) / IDLE_CONNECTIONS, objects / IDLE_CONNECTIONS


@pytest.mark.parametrize(
    ("subprotocols", "ceiling", "object_ceiling"),
    [
        ((), DEDICATED_IDLE_BYTES, DEDICATED_IDLE_OBJECTS),
        (MUX, MULTIPLEXED_IDLE_BYTES, MULTIPLEXED_IDLE_OBJECTS),
    ],
    ids=["dedicated", "multiplexed"],
)
async def test_memory_per_idle_connection(
    subprotocols: tuple[str, ...], ceiling: int, object_ceiling: int
) -> None:
    app = idle_app()
    async with lifespan(app):
        # The first round pays for what later connections share (the route table's cache
        # entry for the path, among others): ~340 B more per connection, measured alone.
        await idle_cost(app, subprotocols)
        per_connection, objects = await idle_cost(app, subprotocols)
    assert per_connection < ceiling, (
        f"{per_connection:,.0f} B per idle connection, over the {ceiling:,} B ceiling: "
        "`python3 bench/micro.py` (its memory part) breaks it down by allocation site"
    )
    assert objects <= object_ceiling, (
        f"{objects:.1f} objects tracked by the cycle collector per idle connection, over "
        f"{object_ceiling}: compare `collections.Counter(map(type, gc.get_objects()))` before and after"
    )


async def test_a_socket_that_never_sends_keeps_no_call_layout_until_its_first_message() -> None:
    """The message handler's fast call (its arguments laid out by position) is built by the
    first message, not at the handshake: most idle sockets never send."""
    ws = WsRouter()
    got: list[str] = []

    @ws.message("/idle")
    async def idle(data: str, channel: Channel, user: User) -> None:
        got.append(f"{data}:{user.name}")

    app = FastAPI()
    ws.install(app)
    async with lifespan(app):
        client = AsgiServer(app, "/idle", query_string=b"user=ann")
        await client.wait_for(lambda m: m["type"] == "websocket.accept")
        [session] = ws.broker.subscribers("/idle")
        assert isinstance(session, Session)
        assert session.message_handler is not None and session._fast == ()  # accepted, nothing built
        await client.inbox.put(receive_text("hi"))
        await eventually(lambda: got == ["hi:ann"])
        built = session._fast
        assert got == ["hi:ann"] and built is not None and len(built) == 7
        await client.inbox.put(receive_text("again"))
        await eventually(lambda: len(got) == 2)
        assert got == ["hi:ann", "again:ann"] and session._fast is built  # built once
        await client.inbox.put(DISCONNECT)
        await client.task


# --- no reflection per event ----------------------------------------------------------------


class Chat(BaseModel):
    text: str


@pytest.fixture
def reflection(monkeypatch: pytest.MonkeyPatch) -> Iterator[collections.Counter[str]]:
    """Counts calls to what analyzing a handler uses, for as long as the test runs."""
    calls: collections.Counter[str] = collections.Counter()

    def counted(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(inspect, "signature", counted("inspect.signature", inspect.signature))
    monkeypatch.setattr(typing, "get_type_hints", counted("typing.get_type_hints", typing.get_type_hints))
    monkeypatch.setattr(Analyzer, "plan", counted("Analyzer.plan", Analyzer.plan))
    # On the class itself, so that every module's `TypeAdapter` name sees it and isinstance
    # still holds; one frame deeper, so pydantic still finds its caller's namespace.
    adapter_init = TypeAdapter.__init__

    def counted_adapter_init(
        self: TypeAdapter[Any], *args: Any, _parent_depth: int = 2, **kwargs: Any
    ) -> None:
        calls["TypeAdapter"] += 1
        adapter_init(self, *args, _parent_depth=_parent_depth + 1, **kwargs)

    monkeypatch.setattr(TypeAdapter, "__init__", counted_adapter_init)
    yield calls


def reflection_app() -> FastAPI:
    ws = WsRouter()

    @ws.message("/echo")
    async def echo(data: str, channel: Channel) -> None:
        await channel.send(data)

    @ws.message("/chat")
    async def chat(data: Chat, channel: Channel) -> None:
        await channel.send(data.text)

    app = FastAPI()
    ws.install(app)
    return app


def receive_text(text: str) -> Message:
    return {"type": "websocket.receive", "text": text}


DISCONNECT: Message = {"type": "websocket.disconnect", "code": 1000}


async def test_the_counters_see_a_registration(reflection: collections.Counter[str]) -> None:
    """The counting is live: analyzing a handler calls every one of the counted functions."""
    reflection_app()
    assert set(reflection) == {"inspect.signature", "typing.get_type_hints", "Analyzer.plan", "TypeAdapter"}


@pytest.mark.parametrize(
    ("path", "message"), [("/echo", "hi"), ("/chat", '{"text": "hi"}')], ids=["str", "model"]
)
@pytest.mark.parametrize("subprotocols", [(), MUX], ids=["dedicated", "multiplexed"])
async def test_no_reflection_per_message_or_per_connection(
    reflection: collections.Counter[str], path: str, message: str, subprotocols: tuple[str, ...]
) -> None:
    app = reflection_app()
    frame = f"{path}{SEP}{message}" if subprotocols else message
    async with lifespan(app):
        first = AsgiServer(app, path, subprotocols)
        await first.wait_sent(1)
        first.inbox.put_nowait(receive_text(frame))
        await first.wait_sent(2)
        reflection.clear()

        for _ in range(100):
            first.inbox.put_nowait(receive_text(frame))
        await first.wait_sent(102)
        assert first.sent[-1]["text"] == (f"{path}{SEP}hi" if subprotocols else "hi")
        assert not reflection, f"100 messages: {dict(reflection)}"

        # A later connection's whole life: handshake, a message, leave.
        second = AsgiServer(app, path, subprotocols)
        await second.wait_sent(1)
        second.inbox.put_nowait(receive_text(frame))
        await second.wait_sent(2)
        for server in (first, second):
            server.inbox.put_nowait(DISCONNECT)
            await server.task
        assert not reflection, f"a second connection: {dict(reflection)}"


async def test_the_route_table_matches_each_path_once(monkeypatch: pytest.MonkeyPatch) -> None:
    computed: collections.Counter[tuple[str, str]] = collections.Counter()
    match = Handler.match

    def counted_match(self: Handler, path: str) -> dict[str, Any] | None:
        computed[(f"{self.kind} {self.path}", path)] += 1
        return match(self, path)

    monkeypatch.setattr(Handler, "match", counted_match)
    ws = WsRouter()

    @ws.join("/rooms/{room}")
    async def joined(channel: Channel) -> None:
        pass

    @ws.message("/rooms/{room}")
    async def said(data: str, channel: Channel) -> None:
        await channel.send(data)

    @ws.message("/echo")
    async def echo(data: str, channel: Channel) -> None:
        await channel.send(data)

    @ws.leave("/{rest:path}")
    async def left(status: WebSocketStatus) -> None:
        pass

    app = FastAPI()
    ws.install(app)
    async with lifespan(app):
        for path in ("/rooms/a", "/rooms/a", "/rooms/b", "/rooms/a", "/echo"):
            server = AsgiServer(app, path)
            await server.wait_sent(1)
            for i in range(10):
                server.inbox.put_nowait(receive_text(str(i)))
            await server.wait_sent(11)
            server.inbox.put_nowait(DISCONNECT)
            await server.task
    assert {path for _, path in computed} == {"/rooms/a", "/rooms/b", "/echo"}
    assert max(computed.values()) == 1, [key for key, n in computed.items() if n > 1]


# --- slots ----------------------------------------------------------------------------------

PER_CONNECTION = (Session, Channel, BaseConnection, Outbox, TokenBucket, _TopicFramer)
"""Classes with an instance (or more) per open connection (a framer per multiplexed topic)."""


def subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


@pytest.mark.parametrize("root", PER_CONNECTION, ids=lambda cls: cls.__name__)
def test_per_connection_classes_and_their_subclasses_declare_slots(root: type) -> None:
    # wsroute's own subclasses only: a test may subclass one for a fake.
    family = [root, *(sub for sub in subclasses(root) if sub.__module__.startswith("wsroute"))]
    missing = [
        f"{klass.__module__}.{klass.__qualname__}"
        for cls in family
        for klass in cls.__mro__[:-1]
        if "__slots__" not in vars(klass)
    ]
    assert not missing, f"without __slots__ (their instances get a __dict__): {sorted(set(missing))}"


async def test_live_per_connection_objects_have_no_instance_dict() -> None:
    ws = WsRouter(rate_limit=(1000, 1.0))

    @ws.message("/rooms/{room}", rate_limit=(100, 1.0))
    async def said(data: str, channel: Channel) -> None:
        await channel.send(data)

    app = FastAPI()
    ws.install(app)
    async with lifespan(app):
        dedicated = AsgiServer(app, "/rooms/a")
        multiplexed = AsgiServer(app, "/rooms/b", MUX)
        await dedicated.wait_sent(1)
        await multiplexed.wait_sent(1)
        multiplexed.inbox.put_nowait(receive_text(encode_subscribe("/rooms/c")))
        await multiplexed.wait_sent(2)
        gc.collect()
        live = [obj for obj in gc.get_objects() if isinstance(obj, PER_CONNECTION)]
        for server in (dedicated, multiplexed):
            server.inbox.put_nowait(DISCONNECT)
            await server.task
    seen = {type(obj) for obj in live}
    assert {Session, Channel, Connection, MultiplexConnection, Outbox, TokenBucket, _TopicFramer} <= seen
    with_dict = sorted({type(obj).__qualname__ for obj in live if hasattr(obj, "__dict__")})
    assert not with_dict, f"instances with a __dict__: {with_dict}"
