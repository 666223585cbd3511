"""`wsroute.testing` at its edges: a topic the server closes while a call waits on it, timeouts
that say what they waited for, non-ASCII first topics, the in-process session's full set of
calls, a bounded `eventually`, a `serve` cancelled mid-start, positions and recoveries that
follow the frames a test has actually read. Bounded in time; traffic on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from wsroute import Channel, WsRouter, testing
from wsroute.multiplex.codec import Ok
from wsroute.testing import (
    MultiplexClient,
    MultiplexTestSession,
    TopicClosed,
    connect,
    eventually,
    multiplex_testclient,
    serve,
)


def make_app() -> FastAPI:
    """Rooms that echo with their name, and a handler that crashes."""
    ws = WsRouter()

    @ws.message("/rooms/{room}")
    async def said(data: str, room: str, channel: Channel) -> None:
        await channel.broadcast(f"{room}:{data}")

    @ws.message("/boom")
    async def boom(data: str, channel: Channel) -> None:
        raise RuntimeError("kaboom")

    app = FastAPI()
    ws.install(app)
    return app


# --- a topic the server has closed is reported as "nothing came" ---------------------------


def test_sync_recv_data_reports_the_servers_close_of_the_topic() -> None:
    """The handler crashes: the server unsubscribes the topic with 1011 at once. recv_data
    should say so; it waits its whole timeout and raises a bare 'no frame' TimeoutError,
    the 1011 sitting unread in the buffer."""
    with TestClient(make_app()) as client, multiplex_testclient(client, "/rooms/a") as mux:
        assert mux.subscribe("/boom") == Ok("SUBSCRIBE", ("/boom",))
        mux.send("/boom", "x")
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            mux.recv_data("/boom", timeout=1.5)
        assert not isinstance(raised.value, TimeoutError), (
            f"{raised.value!r} after {time.monotonic() - started:.1f}s"
        )
        assert "1011" in str(raised.value)


async def test_async_recv_data_reports_the_servers_close_of_the_topic() -> None:
    async with serve(make_app()) as url, MultiplexClient.connect(f"ws://{url}/rooms/a") as mux:
        assert await mux.subscribe("/boom") == Ok("SUBSCRIBE", ("/boom",))
        await mux.send("/boom", "x")
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            await mux.recv_data("/boom", timeout=1.5)
        assert not isinstance(raised.value, TimeoutError), (
            f"{raised.value!r} after {time.monotonic() - started:.1f}s"
        )
        assert "1011" in str(raised.value)


# --- MultiplexClient's timeouts are bare -------------------------------------------------


async def test_multiplex_client_timeouts_say_what_they_waited_for() -> None:
    """`Client.recv` and `MultiplexTestSession` name the socket and the time; MultiplexClient
    raises `TimeoutError()` with no message at all."""
    async with serve(make_app()) as url, MultiplexClient.connect(f"ws://{url}/rooms/a") as mux:
        with pytest.raises(TimeoutError) as raised:
            await mux.recv(timeout=0.1)
        assert str(raised.value), "empty TimeoutError from MultiplexClient.recv"
        with pytest.raises(TimeoutError) as raised:
            await mux.recv_data("/rooms/a", timeout=0.1)
        assert "/rooms/a" in str(raised.value) and "0.1" in str(raised.value), repr(raised.value)


async def test_an_unsubscribe_reason_no_close_frame_could_carry_is_refused_before_sending() -> None:
    """Over 123 bytes the server answers INVALID, not OK or ERR: `unsubscribe` would wait out
    its timeout. It raises at once instead, as WebSocket.close() does, and the topic stays."""
    async with serve(make_app()) as url, MultiplexClient.connect(f"ws://{url}/rooms/a") as mux:
        with pytest.raises(ValueError, match="123"):
            await mux.unsubscribe("/rooms/a", 4000, "é" * 62)
        assert isinstance(await mux.unsubscribe("/rooms/a", 4000, "é" * 61 + "a"), Ok)


# --- a non-ASCII first topic is not the topic on the wire ----------------------------------


async def test_a_non_ascii_first_topic_gets_its_echo() -> None:
    """websockets percent-encodes the URL (as a browser does), and the server names the first
    topic "as sent" (docs/protocol.md): `/rooms/caf%C3%A9`. `first_topic` says `/rooms/café`,
    so a send to it is answered 'Not Subscribed' (with meta=True, `connect` itself times out
    waiting for an OK naming `/rooms/café`)."""
    async with serve(make_app()) as url, MultiplexClient.connect(f"ws://{url}/rooms/café") as mux:
        await mux.send(mux.first_topic, "hi")
        frame = await mux.recv(timeout=2)
        assert getattr(frame, "text", None) == "café:hi", (mux.first_topic, frame)


def test_a_non_ascii_first_topic_over_the_test_client() -> None:
    with TestClient(make_app()) as client, multiplex_testclient(client, "/rooms/café") as mux:
        mux.send(mux.first_topic, "hi")
        frame = mux.recv(timeout=2)
        assert getattr(frame, "text", None) == "café:hi", (mux.first_topic, frame)


# --- the in-process session lacks MultiplexClient's calls -----------------------------------


def test_the_in_process_session_has_the_multiplex_clients_calls() -> None:
    """docs/testing.md: multiplex_testclient opens a socket 'with the same calls as
    MultiplexClient below, synchronous'."""
    public = {name for name in vars(MultiplexClient) if not name.startswith("_")} - {"connect"}
    missing = sorted(public - set(dir(MultiplexTestSession)))
    subscribe = set(inspect.signature(MultiplexTestSession.subscribe).parameters)
    opens = set(inspect.signature(multiplex_testclient).parameters)
    assert not missing, f"MultiplexTestSession lacks {missing}"
    assert {"positions", "since", "presence"} <= subscribe, subscribe
    assert {"positions", "since", "presence"} <= opens, opens


# --- eventually's timeout does not bound an async predicate --------------------------------


async def test_eventually_times_out_on_a_predicate_that_does_not_return() -> None:
    async def stuck() -> bool:
        await asyncio.sleep(3600)
        return True

    async with asyncio.timeout(3):
        with pytest.raises(AssertionError, match="waiting for the row"):
            await eventually(stuck, timeout=0.2, what="the row")


# --- a serve cancelled while starting leaks its server ------------------------------------


async def test_a_serve_cancelled_while_starting_does_not_leak_its_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A test's `asyncio.timeout` (or pytest-timeout) fires while the app's lifespan is
    still starting: the `to_thread(server.start)` cannot be cancelled, so the server comes up
    afterwards and is never stopped; it stays registered for `connect("/path")`."""

    @contextlib.asynccontextmanager
    async def slow(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.sleep(0.5)
        yield

    ws = WsRouter()

    @ws.message("/echo")
    async def echo(data: str, channel: Channel) -> None:
        await channel.send(data)

    app = FastAPI(lifespan=slow)
    ws.install(app)
    servers: list[testing.ServerThread] = []
    original_start = testing.ServerThread.start

    def recording_start(self: testing.ServerThread) -> str:
        servers.append(self)
        return original_start(self)

    monkeypatch.setattr(testing.ServerThread, "start", recording_start)
    before = {thread for thread in threading.enumerate() if thread.name == "wsroute-serve"}
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1), serve(app):
            pass
    await asyncio.sleep(1.5)  # the lifespan has finished starting by now
    leaked = {thread for thread in threading.enumerate() if thread.name == "wsroute-serve"} - before
    try:
        with pytest.raises(ValueError, match="no `serve` block is running"):
            async with connect("/echo", timeout=1):
                pass
        assert not leaked, "the server thread still runs after its serve block was cancelled"
    finally:
        for server in servers:  # do not let the leak spill into later tests
            await asyncio.to_thread(server.stop, 5.0)


# --- `recovered` keeps the answer of an earlier subscription --------------------------------


async def test_recovered_is_none_after_a_subscription_that_asked_for_no_recovery() -> None:
    """`recovered(topic)`: 'What the last OK of topic said of a recovery (None: none was
    asked)'. `_Frames.subscribed` only ever sets it, so a later OK without `recovered=`
    still reports the old True."""
    ws = WsRouter()

    @ws.message("/rooms/{room}")
    async def said(data: str, channel: Channel) -> None:
        await channel.broadcast(data)

    ws.topic("/rooms/{room}", history=10)
    app = FastAPI()
    ws.install(app)
    async with serve(app) as url, MultiplexClient.connect(f"ws://{url}/rooms/a") as mux:
        assert isinstance(await mux.subscribe("/rooms/b", positions=True), Ok)
        await mux.send("/rooms/b", "one")
        assert await mux.recv_data("/rooms/b", timeout=2) == "one"
        last = mux.position("/rooms/b")
        assert last is not None
        assert isinstance(await mux.unsubscribe("/rooms/b"), Ok)
        assert isinstance(await mux.subscribe("/rooms/b", since=last), Ok)
        assert mux.recovered("/rooms/b") is True
        assert isinstance(await mux.unsubscribe("/rooms/b"), Ok)
        reply = await mux.subscribe("/rooms/b", positions=True)  # no recovery asked this time
        assert isinstance(reply, Ok) and "recovered" not in reply.params[1], reply
        assert mux.recovered("/rooms/b") is None


def test_the_in_process_session_asks_for_presence_and_reads_it() -> None:
    """`multiplex_testclient(..., presence=True)`: the member list, then the changes."""
    ws = WsRouter()

    @ws.message("/rooms/{room}")
    async def said(data: str, channel: Channel) -> None:
        await channel.broadcast(data)

    ws.topic("/rooms/{room}", presence=True)
    app = FastAPI()
    ws.install(app)
    with TestClient(app) as client, multiplex_testclient(client, "/rooms/a", presence=True) as mux:
        kind, members = mux.recv_presence("/rooms/a", timeout=2)
        assert kind == "state"
        assert isinstance(mux.subscribe("/rooms/b"), Ok)
        mux.send("/rooms/b", "hi")
        assert mux.recv_any_data(timeout=2) == ("/rooms/b", "hi")
        while not members:  # the state may come before this socket's own join is in it
            kind, diff = mux.recv_presence("/rooms/a", timeout=2)
            assert kind == "diff"
            members = diff["joins"]
        assert len(members) == 1


async def test_a_request_leaves_the_position_at_the_last_publication_read() -> None:
    """A publication that arrives while `request` waits for its reply is kept for
    `recv_data`; `position` moves to it only once the test has read it."""
    ws = WsRouter()

    @ws.message("/orders/{book}")
    async def order(data: str, channel: Channel) -> str:
        await channel.broadcast(f"placed {data}")
        return f"receipt {data}"

    ws.topic("/orders/{book}", history=10)
    app = FastAPI()
    ws.install(app)
    async with serve(app) as url, MultiplexClient.connect(f"ws://{url}/orders/a") as mux:
        assert isinstance(await mux.subscribe("/orders/b", positions=True), Ok)
        start = mux.position("/orders/b")
        assert start is not None
        assert await mux.request("/orders/b", "1", timeout=2) == "receipt 1"
        assert mux.position("/orders/b") == start, "moved past a publication not read yet"
        assert await mux.recv_data("/orders/b", timeout=2) == "placed 1"
        assert mux.position("/orders/b") == (start.epoch, start.offset + 1)


async def test_topic_closed_carries_the_code_and_reason() -> None:
    async with serve(make_app()) as url, MultiplexClient.connect(f"ws://{url}/rooms/a") as mux:
        assert isinstance(await mux.subscribe("/boom"), Ok)
        await mux.send("/boom", "x")
        with pytest.raises(TopicClosed) as closed:
            await mux.recv_data("/boom", timeout=2)
        assert (closed.value.topic, closed.value.code) == ("/boom", 1011)
        # Reported once: the other topics go on, and the close is not reported again.
        await mux.send("/rooms/a", "still here")
        assert await mux.recv_data("/rooms/a", timeout=2) == "a:still here"


def test_an_already_subscribed_err_leaves_the_topic_as_it_was() -> None:
    """A second SUBSCRIBE of a `meta` topic is refused (409); the topic keeps its metadata,
    so it still takes requests."""
    ws = WsRouter()

    @ws.message("/orders/{book}")
    async def order(data: str) -> str:
        return f"receipt {data}"

    app = FastAPI()
    ws.install(app)
    with TestClient(app) as client, multiplex_testclient(client, "/orders/a") as mux:
        assert isinstance(mux.subscribe("/orders/b", meta=True), Ok)
        refused = mux.subscribe("/orders/b")
        assert not isinstance(refused, Ok) and "Already Subscribed" in refused.reason
        assert mux.request("/orders/b", "1", timeout=2) == "receipt 1"


async def test_a_close_of_an_earlier_subscription_is_not_reported_for_the_next() -> None:
    """The server closes a topic (its handler raised) and the test subscribes it again
    without reading that close: the next `recv_data` gets the new subscription's data, not
    a `TopicClosed` that belonged to the old one."""
    ws = WsRouter()

    @ws.message("/flaky")
    async def flaky(data: str, channel: Channel) -> None:
        if data == "crash":
            raise RuntimeError("crash")
        await channel.broadcast(f"flaky:{data}")

    @ws.message("/lobby")
    async def lobby(data: str) -> None:
        return None

    app = FastAPI()
    ws.install(app)
    async with serve(app) as url, MultiplexClient.connect(f"ws://{url}/lobby") as mux:
        assert isinstance(await mux.subscribe("/flaky"), Ok)
        await mux.send("/flaky", "crash")
        await asyncio.sleep(0.2)  # its close is on the wire before the next SUBSCRIBE
        assert isinstance(await mux.subscribe("/flaky"), Ok)
        await mux.send("/flaky", "hi")
        assert await mux.recv_data("/flaky", timeout=2) == "flaky:hi"


async def test_serve_says_it_listens_on_the_loopback_only_when_given_a_host() -> None:
    """`serve(app, host=...)` used to fail with Python's "got multiple values for keyword
    argument 'host'", naming neither the kit nor the reason."""
    with pytest.raises(TypeError, match=r"always listen on 127\.0\.0\.1; host= is not accepted"):
        async with serve(make_app(), host="0.0.0.0"):
            pass
