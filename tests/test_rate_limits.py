"""Rate limits on a real uvicorn: the same on a dedicated socket and on a multiplexed topic.

A rate limit belongs to a connection — a dedicated socket or one topic of a multiplexed
socket — and a message over it raises `RateLimited` into that connection's exception
handlers: by default it closes that connection with 1008 (`·UNSUBSCRIBE·topic·1008·…` for a
topic, the other topics staying up), and a registered handler may keep it open. The
router's limit is every connection's default, and on a multiplexed socket it also bounds the
frames no topic counts (control actions, frames for no topic): over that, the socket closes.

Windows are generous (3 messages a minute) so nothing here depends on timing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI

from support.clients import close_seen, connect
from support.running import Running, serving
from wsroute import Channel, RateLimited, WebSocketStatus, WsRouter
from wsroute.asyncapi import asyncapi_document
from wsroute.multiplex.codec import SEP, DataFrame, Invalid, Ok, ServerUnsubscribe
from wsroute.testing import WS_IMPLEMENTATIONS, MultiplexClient, eventually, serve

S = SEP
LIMIT = (3, 60.0)
OVER = (1008, "rate limit exceeded")


@dataclass
class Probe:
    handled: list[tuple[str, str]] = field(default_factory=list)
    leaves: list[tuple[str, int, str]] = field(default_factory=list)

    def left(self, topic: str) -> list[tuple[int, str]]:
        return [(code, reason) for who, code, reason in self.leaves if who == topic]


def build(
    probe: Probe,
    *,
    rate_limit: tuple[int, float] | None = None,
    route_limits: bool = True,
    lenient: bool = False,
) -> tuple[FastAPI, WsRouter]:
    """`/echo` has no limit of its own; `/limited` and `/room` (with a join) allow 3 a minute."""
    ws = WsRouter(rate_limit=rate_limit)
    limited: dict[str, Any] = {"rate_limit": LIMIT} if route_limits else {}

    @ws.message("/echo")
    async def echo(data: str, channel: Channel) -> None:
        probe.handled.append((channel.request.url.path, data))
        await channel.send(data)

    @ws.message("/limited", **limited)
    async def limited_echo(data: str, channel: Channel) -> None:
        probe.handled.append((channel.request.url.path, data))
        await channel.send(data)

    @ws.join("/room")
    async def joined(channel: Channel) -> None:
        await channel.send("welcome")

    @ws.message("/room", **limited)
    async def said(data: str, channel: Channel) -> None:
        probe.handled.append((channel.request.url.path, data))
        await channel.send(data)

    @ws.leave("/{rest:path}")
    async def left(status: WebSocketStatus, channel: Channel) -> None:
        query = channel.request.url.query
        probe.leaves.append((channel.topic + (f"?{query}" if query else ""), status.code, status.reason))

    if lenient:

        @ws.exception_handler(RateLimited)
        async def slow_down(channel: Channel, exc: RateLimited) -> None:
            await channel.send(f"slow down: {exc.reason} (dropped {exc.text!r})")  # what was sent

    app = FastAPI()
    ws.install(app)
    return app, ws


@contextmanager
def running(ws_impl: str = "websockets-sansio", **options: Any) -> Iterator[Running]:
    probe = Probe()
    with serving(*build(probe, **options), probe, ws_impl) as served:
        yield served


async def echoes(mux: MultiplexClient, topic: str, *payloads: str) -> None:
    for payload in payloads:
        await mux.send(topic, payload)
        assert await mux.recv_data(topic) == payload


@asynccontextmanager
async def multiplexed(url: str) -> AsyncIterator[MultiplexClient]:
    async with MultiplexClient.connect(url, open_timeout=5, close_timeout=5) as mux:
        yield mux


# --- dedicated sockets ---------------------------------------------------------------------------


async def test_a_route_limit_closes_a_dedicated_socket_1008_and_leave_sees_it() -> None:
    with running() as app:
        async with connect(f"ws://{app.host}/limited") as client:
            for text in ("a", "b", "c"):
                await client.send(text)
                assert await client.recv() == text
            await client.send("d")
            assert await close_seen(client) == OVER
        await eventually(lambda: bool(app.probe.left("/limited")), what="the leave")
        # /echo has no limit (the router has none): the same burst is fine there.
        async with connect(f"ws://{app.host}/echo") as client:
            for i in range(10):
                await client.send(str(i))
                assert await client.recv() == str(i)
    assert app.probe.left("/limited") == [OVER]
    assert [data for path, data in app.probe.handled if path == "/limited"] == ["a", "b", "c"]


async def test_a_route_limit_applies_on_a_path_with_a_join_handler() -> None:
    with running() as app:
        async with connect(f"ws://{app.host}/room") as client:
            assert await client.recv() == "welcome"
            for text in ("a", "b", "c"):
                await client.send(text)
                assert await client.recv() == text
            await client.send("d")
            assert await close_seen(client) == OVER
        await eventually(lambda: bool(app.probe.left("/room")), what="the leave")
    assert app.probe.left("/room") == [OVER]


async def test_an_exception_handler_keeps_a_dedicated_socket_open_over_its_route_limit() -> None:
    with running(lenient=True) as app:
        async with connect(f"ws://{app.host}/limited") as client:
            for text in ("a", "b", "c"):
                await client.send(text)
                assert await client.recv() == text
            for text in ("d", "e"):  # dropped, never handled; the handler answers each
                await client.send(text)
                assert await client.recv() == f"slow down: rate limit exceeded (dropped {text!r})"
        await eventually(lambda: bool(app.probe.left("/limited")), what="the leave")
    assert app.probe.left("/limited") == [(1000, "")]
    assert [data for _, data in app.probe.handled] == ["a", "b", "c"]


async def test_a_route_limit_overrides_the_routers_either_way() -> None:
    # The router allows 100 a minute; /limited keeps its own 3.
    with running(rate_limit=(100, 60.0)) as app:
        async with connect(f"ws://{app.host}/limited") as client:
            for text in ("a", "b", "c"):
                await client.send(text)
                assert await client.recv() == text
            await client.send("d")
            assert await close_seen(client) == OVER
    # The router allows 3 a minute; a route may allow more than that.
    ws = WsRouter(rate_limit=LIMIT)

    @ws.message("/chatty", rate_limit=(10, 60.0))
    async def chatty(data: str, channel: Channel) -> None:
        await channel.send(data)

    app_ = FastAPI()
    ws.install(app_)
    async with serve(app_) as host, connect(f"ws://{host}/chatty") as client:
        for i in range(10):
            await client.send(str(i))
            assert await client.recv() == str(i)
        await client.send("over")
        assert await close_seen(client) == OVER


# --- multiplexed sockets: the same, per topic ----------------------------------------------------


@pytest.mark.parametrize("ws_impl", WS_IMPLEMENTATIONS)
async def test_a_topic_over_its_route_limit_is_closed_alone(ws_impl: str) -> None:
    with running(ws_impl) as app:
        async with multiplexed(f"ws://{app.host}/limited") as mux:
            assert isinstance(await mux.subscribe("/echo"), Ok)
            await echoes(mux, "/limited", "a", "b", "c")
            await mux.send("/limited", "d")
            assert await mux.recv() == ServerUnsubscribe("/limited", *OVER)
            # The socket and the other topic stay up, both ways.
            await echoes(mux, "/echo", *(str(i) for i in range(10)))
            await mux.send("/limited", "e")
            assert await mux.recv() == Invalid("Not Subscribed")
            await eventually(lambda: bool(app.probe.left("/limited")), what="the topic's leave")
            # Subscribing again is a new virtual connection, with a new allowance (as a
            # reconnect would be).
            assert isinstance(await mux.subscribe("/limited"), Ok)
            await echoes(mux, "/limited", "f", "g", "h")
        await eventually(lambda: bool(app.probe.left("/echo")), what="the socket's end")
    assert app.probe.left("/limited") == [OVER, (1000, "")]
    assert app.probe.left("/echo") == [(1000, "")]
    assert [data for path, data in app.probe.handled if path == "/limited"] == ["a", "b", "c", "f", "g", "h"]


async def test_a_topic_with_a_join_handler_is_closed_alone_over_its_route_limit() -> None:
    with running() as app:
        async with multiplexed(f"ws://{app.host}/echo") as mux:
            assert isinstance(await mux.subscribe("/room"), Ok)
            assert await mux.recv_data("/room") == "welcome"
            await echoes(mux, "/room", "a", "b", "c")
            await mux.send("/room", "d")
            assert await mux.recv() == ServerUnsubscribe("/room", *OVER)
            await echoes(mux, "/echo", "still here")
            await eventually(lambda: bool(app.probe.left("/room")), what="the topic's leave")
    assert app.probe.left("/room") == [OVER]


async def test_an_exception_handler_keeps_a_multiplexed_topic_open_over_its_route_limit() -> None:
    with running(lenient=True) as app:
        async with multiplexed(f"ws://{app.host}/echo") as mux:
            assert isinstance(await mux.subscribe("/limited"), Ok)
            await echoes(mux, "/limited", "a", "b", "c")
            for text in ("d", "e"):  # dropped, never handled; the handler answers on the topic
                await mux.send("/limited", text)
                expected = f"slow down: rate limit exceeded (dropped {text!r})"
                assert await mux.recv() == DataFrame("/limited", expected, None)
            await echoes(mux, "/echo", "still here")
            assert isinstance(await mux.unsubscribe("/limited"), Ok)  # it was still open
        await eventually(lambda: bool(app.probe.left("/echo")), what="the socket's end")
    assert app.probe.left("/limited") == [(1000, "")]
    assert [data for path, data in app.probe.handled if path == "/limited"] == ["a", "b", "c"]


# --- the router's limit on a multiplexed socket -------------------------------------------------


@pytest.mark.parametrize("ws_impl", WS_IMPLEMENTATIONS)
async def test_the_routers_limit_counts_each_topic_on_its_own(ws_impl: str) -> None:
    """Each topic gets the allowance a dedicated connection would, and is closed alone."""
    with running(ws_impl, rate_limit=LIMIT, route_limits=False) as app:
        async with multiplexed(f"ws://{app.host}/echo?n=1") as mux:
            assert isinstance(await mux.subscribe("/echo?n=2"), Ok)
            await echoes(mux, "/echo?n=1", "a", "b", "c")
            await echoes(mux, "/echo?n=2", "a", "b")
            await mux.send("/echo?n=1", "d")
            assert await mux.recv() == ServerUnsubscribe("/echo?n=1", *OVER)
            await echoes(mux, "/echo?n=2", "c")
            await mux.send("/echo?n=2", "d")
            assert await mux.recv() == ServerUnsubscribe("/echo?n=2", *OVER)
            await eventually(lambda: len(app.probe.leaves) == 2, what="both topics' leaves")
            assert isinstance(await mux.subscribe("/echo?n=3"), Ok)  # the socket is still up
    assert app.probe.left("/echo?n=1") == [OVER]
    assert app.probe.left("/echo?n=2") == [OVER]
    assert [data for _, data in app.probe.handled] == ["a", "b", "c", "a", "b", "c"]


async def test_the_routers_limit_goes_to_the_addressed_topics_exception_handler() -> None:
    with running(rate_limit=LIMIT, route_limits=False, lenient=True) as app:
        async with multiplexed(f"ws://{app.host}/echo?n=1") as mux:
            assert isinstance(await mux.subscribe("/echo?n=2"), Ok)
            await echoes(mux, "/echo?n=1", "a", "b", "c")
            await mux.send("/echo?n=1", "d")
            answer = "slow down: rate limit exceeded (dropped 'd')"
            assert await mux.recv() == DataFrame("/echo?n=1", answer, None)
            await echoes(mux, "/echo?n=2", "a", "b", "c")  # untouched by the other's excess
        await eventually(lambda: len(app.probe.leaves) == 2, what="both topics' leaves")
    assert sorted(app.probe.leaves) == [("/echo?n=1", 1000, ""), ("/echo?n=2", 1000, "")]


async def test_frames_no_topic_counts_are_bounded_by_the_routers_limit_for_the_socket() -> None:
    """SUBSCRIBE, UNSUBSCRIBE and frames for no topic: 3 a minute, then the socket closes."""
    with running(rate_limit=LIMIT, route_limits=False, lenient=True) as app:
        async with multiplexed(f"ws://{app.host}/echo?n=1") as mux:
            await echoes(mux, "/echo?n=1", "a", "b", "c")  # data frames count for the topic only
            assert isinstance(await mux.subscribe("/echo?n=2"), Ok)  # 1
            assert isinstance(await mux.unsubscribe("/echo?n=2"), Ok)  # 2
            await mux.send("/nowhere", "x")  # 3
            assert await mux.recv() == Invalid("Not Subscribed")
            await mux.send_raw(f"{S}SUBSCRIBE{S}/echo?n=3")  # one too many
            assert await close_seen(mux.websocket) == OVER
        await eventually(lambda: bool(app.probe.left("/echo?n=1")), what="the first topic's leave")
    # No exception handler ran for the socket's limit (no topic was addressed): "slow down"
    # was never sent, and the topic still open ended with the socket's code.
    assert app.probe.left("/echo?n=1") == [OVER]
    assert app.probe.left("/echo?n=2") == [(1000, "")]


async def test_without_limits_multiplexed_frames_are_not_counted() -> None:
    with running(route_limits=False) as app:
        async with multiplexed(f"ws://{app.host}/echo") as mux:
            for i in range(20):
                assert isinstance(await mux.subscribe(f"/limited?i={i}"), Ok)
                await echoes(mux, f"/limited?i={i}", "x")
                assert isinstance(await mux.unsubscribe(f"/limited?i={i}"), Ok)
            await echoes(mux, "/echo", *(str(i) for i in range(20)))


# --- registration and documentation --------------------------------------------------------------


@pytest.mark.parametrize("rate_limit", [(0, 1.0), (10, 0), (10, -1.0), (-1, 5.0), (10,), "fast", 10])
def test_a_route_rate_limit_that_cannot_be_kept_is_refused_at_the_decorator(rate_limit: Any) -> None:
    ws = WsRouter()
    with pytest.raises(ValueError, match=r"rate_limit=.*'/x'.*both positive"):
        ws.message("/x", rate_limit=rate_limit)


def test_a_route_rate_limit_survives_include_router_and_is_documented() -> None:
    inner = WsRouter()

    @inner.message("/chat", rate_limit=(5, 1.0))
    async def chat(data: str) -> None: ...

    @inner.message("/free")
    async def free(data: str) -> None: ...

    outer = WsRouter(rate_limit=(50, 10.0))
    outer.include_router(inner, prefix="/v1")
    assert [(h.path, h.rate_limit) for h in outer.table.handlers] == [
        ("/v1/chat", (5, 1.0)),
        ("/v1/free", None),
    ]
    operations = asyncapi_document(outer)["operations"]
    limits = {op["channel"]["$ref"]: op.get("x-wsroute-rate-limit") for op in operations.values()}
    assert sorted(limits.values(), key=str) == [
        {"messages": 5, "seconds": 1.0},
        {"messages": 50, "seconds": 10.0},
    ]
