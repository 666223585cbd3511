"""Server-side control on the memory backend, over a real uvicorn server: disconnect a
client or a user, close one topic, subscribe a socket from the server (docs/presence.md).

Across workers on Redis: test_presence_redis.py."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from websockets.exceptions import ConnectionClosed

from support.raw import OP_TEXT, RawClient, client_frame, server_side_established
from wsroute import AppBroker, Broker, Channel, PresenceInfo, Reject, WebSocketStatus, WsRouter
from wsroute.multiplex.codec import (
    SEP,
    DataFrame,
    Err,
    Ok,
    Reason,
    ServerFrame,
    ServerUnsubscribe,
    encode_subscribe,
)
from wsroute.status import clip_reason
from wsroute.testing import FASTLANE, MultiplexClient, connect, eventually, serve

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024


def largest_send_buffer() -> int:
    """The most the kernel lets the sending side of one TCP socket hold (tcp_wmem's maximum)."""
    return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])


def refuse() -> None:
    raise Reject(403, "private")


class SlowGuard:
    """What ``/slow/{room}``'s guard does (the server runs in this process, in a thread):
    notes each run in `runs`, waits for `release`, then takes its verdict from `verdicts`;
    the ``/subscribe`` endpoint notes each call in `calls` before it calls the broker."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.release = threading.Event()
        self.verdicts: list[bool] = []
        self.calls: list[str] = []

    def reset(self, verdicts: list[bool]) -> None:
        """Forget the last test's runs and calls; hold the guard until `release`."""
        self.runs.clear()
        self.calls.clear()
        self.release.clear()
        self.verdicts[:] = verdicts


SLOW = SlowGuard()
PUMPS: set[asyncio.Task[None]] = set()  # the /pump tasks running (a task needs a reference)


def make_app(**settings: Any) -> tuple[FastAPI, list[tuple[str, int]]]:
    ws = WsRouter(**settings)
    leaves: list[tuple[str, int]] = []

    @ws.join("/rooms/{room}")
    async def enter(user: str | None = None, delay: float = 0) -> PresenceInfo:
        if delay:
            await asyncio.sleep(delay)
        return PresenceInfo(user=user)

    @ws.message("/rooms/{room}")
    async def said(data: str, channel: Channel, broker: Broker) -> None:
        if data == "me?":
            await channel.send(channel.client_id)
        elif data == "swallow":
            # A handler that catches the cancellation sent to its connection, and returns.
            SLOW.runs.append("swallowing")
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                SLOW.runs.append("swallowed")
        elif data == "kick me":
            await broker.disconnect(client_id=channel.client_id, code=4009, reason="kicked by itself")
        else:
            await channel.broadcast(data)

    @ws.leave("/rooms/{room}")
    async def left(channel: Channel, status: WebSocketStatus) -> None:
        assert channel.client_id  # an app may read it to clean up what it keyed by it
        leaves.append((channel.topic, status.code))

    @ws.message("/private")
    async def private(data: str, _: Annotated[None, Depends(refuse)]) -> None: ...

    async def slow_guard() -> None:
        SLOW.runs.append("/slow")
        deadline = time.monotonic() + 10
        while not SLOW.release.is_set():
            if time.monotonic() > deadline:
                raise Reject(503, "the test never released the guard")
            await asyncio.sleep(0.01)
        if not SLOW.verdicts.pop(0):
            raise Reject(403, "not now")

    @ws.message("/slow/{room}")
    async def slow(data: str, _: Annotated[None, Depends(slow_guard)]) -> None: ...

    @ws.leave("/slow/{room}")
    async def slow_left(channel: Channel, status: WebSocketStatus) -> None:
        leaves.append((channel.topic, status.code))

    @ws.join("/lingering/{room}")
    async def lingering(channel: Channel) -> None:
        """Runs until its topic ends, then takes a while to clean up (a rollback, say)."""
        SLOW.runs.append(channel.client_id)
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.3)

    @ws.message("/lingering/{room}")
    async def lingering_said(data: str) -> None: ...

    ws.topic("/rooms/{room}", presence=True)
    app = FastAPI()

    @app.post("/disconnect")
    async def disconnect(
        broker: AppBroker,
        code: int,
        client_id: str | None = None,
        user: str | None = None,
        reason: str = "bye",
    ) -> int:
        return await broker.disconnect(client_id=client_id, user=user, code=code, reason=reason)

    @app.post("/unsubscribe")
    async def unsubscribe(
        broker: AppBroker, topic: str, code: int, user: str | None = None, client_id: str | None = None
    ) -> int:
        return await broker.unsubscribe(topic, client_id=client_id, user=user, code=code, reason="moved")

    @app.post("/subscribe")
    async def subscribe(broker: AppBroker, client_id: str, topic: str) -> Any:
        SLOW.calls.append(topic)
        try:
            return await broker.subscribe(client_id, topic)
        except Reject as exc:
            return {"refused": exc.status_code}

    @app.get("/clients")
    async def clients(broker: AppBroker) -> int:
        return len(broker.clients)

    @app.post("/pump")
    async def pump(broker: AppBroker, topic: str, count: int) -> None:
        """Broadcast ``0`` … ``count - 1`` to `topic`, one every 10 ms, in the server's own
        loop (it runs in a thread of its own: the test's loop must not touch its objects)."""

        async def run() -> None:
            for n in range(count):
                await broker.broadcast_to(topic, str(n))
                await asyncio.sleep(0.01)

        PUMPS.add(task := asyncio.create_task(run()))
        task.add_done_callback(PUMPS.discard)

    ws.install(app)
    return app, leaves


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """`app` served, with an HTTP client for its control routes; bounded to a minute."""
    async with (
        asyncio.timeout(60),
        serve(app) as url,
        httpx.AsyncClient(base_url=f"http://{url}", trust_env=False, timeout=20) as http,
    ):
        yield url, http


@contextlib.asynccontextmanager
async def served(**settings: Any) -> AsyncIterator[tuple[str, httpx.AsyncClient, list[tuple[str, int]]]]:
    app, leaves = make_app(**settings)
    async with serving(app) as (url, http):
        yield url, http, leaves


async def post(http: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await http.post(path, params=params)
    response.raise_for_status()
    return response.json()


async def test_disconnect_a_client_by_id_once() -> None:
    async with served() as (url, http, leaves), connect(f"{url}/rooms/a?user=ann") as ann:
        await ann.send("me?")
        client_id = await ann.recv()
        assert await post(http, "/disconnect", client_id=client_id, code=4001) == 1
        with pytest.raises(ConnectionClosed) as closed:
            await ann.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        assert closed.value.rcvd.reason == "bye"
        await eventually(lambda: leaves == [("/rooms/a", 4001)])
        # Idempotent: nothing left to close.
        assert await post(http, "/disconnect", client_id=client_id, code=4001) == 0
        assert await post(http, "/disconnect", client_id="nobody.1", code=4001) == 0


async def test_a_leave_that_reads_its_client_id_leaves_nothing_behind() -> None:
    """The broker knows a session by its id from the first read until its leave begins: a leave
    handler reading it again must not register the ended session anew (it would never go)."""
    async with served() as (url, http, leaves):
        for n in range(3):
            async with connect(f"{url}/rooms/a?user=ann") as ann:
                await ann.send("me?")
                assert await ann.recv()
            await eventually(lambda n=n: len(leaves) == n + 1)
        assert (await http.get("/clients")).json() == 0


async def test_disconnect_a_user_closes_every_socket_of_theirs_whole() -> None:
    async with (
        served() as (url, http, leaves),
        MultiplexClient.connect(f"{url}/rooms/a?user=ann") as tabs,
        connect(f"{url}/rooms/b?user=ann") as other,
        connect(f"{url}/rooms/a?user=bob") as bob,
    ):
        await tabs.subscribe("/rooms/b?user=ann")
        await eventually(lambda: True)
        assert await post(http, "/disconnect", user="ann", code=4003) == 2
        for socket in (tabs.websocket, other.websocket):
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await socket.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
        await eventually(lambda: len(leaves) == 3)
        assert sorted(leaves) == [("/rooms/a", 4003), ("/rooms/b", 4003), ("/rooms/b", 4003)]
        await bob.send("still here")
        assert await bob.recv() == "still here"


@contextlib.asynccontextmanager
async def never_reading(
    url: str, path: str = "/rooms/a?user=ann", *, multiplexed: bool = False
) -> AsyncIterator[RawClient]:
    """Ann's socket to ``/rooms/a`` from a client that never reads (a 4 KiB receive buffer)."""
    port = int(url.rsplit(":", 1)[1])
    headers = {"Sec-WebSocket-Protocol": "rocket-multiplex"} if multiplexed else {}
    slow = await asyncio.to_thread(RawClient.connect, port, path, headers=headers, rcvbuf=4096)
    try:
        assert slow.status == 101
        yield slow
    finally:
        slow.close()


async def back_up(broker: Broker, slow: RawClient, sender: Any, subscribers: int) -> Any:
    """Broadcast to ``/rooms/a`` (through `sender`) more than the kernel lets the server's
    side of `slow` hold (its largest send buffer), in 512 KiB messages, until the server
    queues for it; returns its session."""
    slow_port = slow.sock.getsockname()[1]
    topics = broker.local_topics
    await eventually(lambda: topics().get("/rooms/a") == subscribers, what=f"{subscribers} subscribers")
    [slow_session] = [s for s in broker.subscribers("/rooms/a") if s.request.client.port == slow_port]
    for _ in range((largest_send_buffer() + 2 * MIB) // (MIB // 2) + 1):
        await sender.send("x" * (MIB // 2))
    await eventually(lambda: len(slow_session.outbox) > 0, timeout=10, what="a backed-up queue")
    return slow_session


async def test_a_client_that_never_reads_holds_up_neither_the_answer_nor_the_other_closes() -> None:
    """A close first flushes what its client has not read, for up to `close_timeout` (30 s
    here). The command answers as soon as its closes have begun, the user's other socket
    closes at once, and a second command while the flush goes on counts nothing twice.
    Broadcasts that overflow the queue meanwhile are dropped: the close keeps its code."""
    app, leaves = make_app(close_timeout=30.0, max_queue=64)
    broker = app.state.wsroute.broker
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=f"http://{url}", trust_env=False, timeout=20) as http,
    ):
        async with (
            never_reading(url) as slow,
            connect(f"{url}/rooms/a?user=ann", max_queue=None) as ann,
            connect(f"{url}/rooms/a?user=bob", max_queue=None) as bob,
        ):
            slow_session = await back_up(broker, slow, bob, subscribers=3)
            began = time.monotonic()
            assert await post(http, "/disconnect", user="ann", code=4003) == 2
            # While the slow socket flushes, it is closing: nothing counts it again.
            assert await post(http, "/disconnect", user="ann", code=4003) == 0
            assert await post(http, "/unsubscribe", topic="/rooms/a", user="ann", code=4010) == 0
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await ann.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
            assert time.monotonic() - began < 10  # not the slow client's 30 s
            await eventually(lambda: leaves == [("/rooms/a", 4003)], what="ann's leave")
            assert len(slow_session.outbox) > 0  # the slow one is still flushing
            for n in range(80):  # more than its queue holds (64): it overflows
                await bob.send(f"more {n}")
            await eventually(lambda: len(slow_session.outbox) == 0, what="the overflow dropped")
            await bob.close()
        # Its client gone without a close frame, the slow socket's close ends too: its leave
        # has the command's code (bob's, who left on his own, has 1000).
        await eventually(lambda: len(leaves) == 3, timeout=10, what="the slow socket's leave")
        assert sorted(leaves) == [("/rooms/a", 1000), ("/rooms/a", 4003), ("/rooms/a", 4003)]


@pytest.mark.parametrize("ws_impl", ["websockets-sansio", "wsproto", FASTLANE])
async def test_a_close_its_client_never_reads_ends_within_its_timeouts(ws_impl: str) -> None:
    """When a server-side close can neither flush nor send its close frame within
    `close_timeout` each (the client never reads), the connection ends anyway: its leave
    runs with the command's code and it is no longer a client. On the fastlane the server
    drops the TCP connection too; stock uvicorn keeps it until the client reads."""
    app, leaves = make_app(close_timeout=0.5)
    broker = app.state.wsroute.broker
    async with (
        serve(app, ws=ws_impl) as url,
        httpx.AsyncClient(base_url=f"http://{url}", trust_env=False, timeout=20) as http,
        never_reading(url) as slow,
        connect(f"{url}/rooms/a?user=bob", max_queue=None) as bob,
    ):
        await back_up(broker, slow, bob, subscribers=2)
        port, slow_port = int(url.rsplit(":", 1)[1]), slow.sock.getsockname()[1]
        assert server_side_established(port, slow_port)
        began = time.monotonic()
        assert await post(http, "/disconnect", user="ann", code=4003) == 1
        await eventually(lambda: leaves == [("/rooms/a", 4003)], timeout=5, what="ann's leave")
        assert time.monotonic() - began < 3  # 0.5 s to flush, 0.5 s for the close frame
        assert (await http.get("/clients")).json() == 1  # bob
        if ws_impl == FASTLANE:
            deadline = time.monotonic() + 2
            while server_side_established(port, slow_port):
                assert time.monotonic() < deadline, "the server still holds the connection"
                await asyncio.sleep(0.05)


async def test_a_close_that_gives_up_ends_its_connection_even_if_a_handler_swallows_the_cancel() -> None:
    """The close of a client that never reads gives up by cancelling its connection; a
    handler running then that catches the cancellation and returns must not keep the
    connection alive: it ends, and its leave runs with the close's code."""
    SLOW.reset([])
    app, leaves = make_app(close_timeout=0.5)
    broker = app.state.wsroute.broker
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=f"http://{url}", trust_env=False, timeout=20) as http,
        never_reading(url) as slow,
        connect(f"{url}/rooms/a?user=bob", max_queue=None) as bob,
    ):
        await back_up(broker, slow, bob, subscribers=2)
        slow.send(client_frame(OP_TEXT, b"swallow"))
        await eventually(lambda: SLOW.runs == ["swallowing"], what="the handler to start")
        assert await post(http, "/disconnect", user="ann", code=4003) == 1
        await eventually(lambda: SLOW.runs == ["swallowing", "swallowed"], timeout=5, what="the cancel")
        await eventually(lambda: leaves == [("/rooms/a", 4003)], timeout=5, what="ann's leave")


async def test_a_handler_that_disconnects_its_own_client_still_sends_the_close_frame() -> None:
    """The command answers once the close has begun; the socket must not go before its close
    frame does, or the client sees a dropped connection instead of the code."""
    async with served() as (url, _, leaves), connect(f"{url}/rooms/a?user=ann") as ann:
        await ann.send("kick me")
        with pytest.raises(ConnectionClosed) as closed:
            await ann.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4009, "kicked by itself")
        await eventually(lambda: leaves == [("/rooms/a", 4009)])


async def test_a_reason_too_long_for_a_close_frame_is_shortened() -> None:
    async with served() as (url, http, leaves), connect(f"{url}/rooms/a?user=ann") as ann:
        await ann.send("me?")
        assert await ann.recv()  # joined: the user is known
        reason = "é" * 100  # 200 UTF-8 bytes; a close frame carries 123
        assert await post(http, "/disconnect", user="ann", code=4001, reason=reason) == 1
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ann.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        assert closed.value.rcvd.reason == clip_reason(reason)
        assert closed.value.rcvd.reason.endswith("...") and len(closed.value.rcvd.reason.encode()) <= 123
        await eventually(lambda: leaves == [("/rooms/a", 4001)])


async def test_unsubscribe_closes_a_dedicated_socket_named_by_its_client_id() -> None:
    async with served() as (url, http, leaves), connect(f"{url}/rooms/a?user=ann") as ann:
        await ann.send("me?")
        client_id = await ann.recv()
        # The id names the session on /rooms/a: another topic has nothing of it to close.
        assert await post(http, "/unsubscribe", topic="/rooms/b", client_id=client_id, code=4010) == 0
        assert await post(http, "/unsubscribe", topic="/rooms/a", client_id=client_id, code=4010) == 1
        with pytest.raises(ConnectionClosed) as closed:
            await ann.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4010, "moved")
        await eventually(lambda: leaves == [("/rooms/a", 4010)])
        assert await post(http, "/unsubscribe", topic="/rooms/a", client_id=client_id, code=4010) == 0


async def test_unsubscribe_closes_one_topic_and_keeps_the_socket() -> None:
    async with served() as (url, http, leaves), MultiplexClient.connect(f"{url}/rooms/a?user=ann") as ann:
        assert isinstance(await ann.subscribe("/rooms/b?user=ann"), Ok)
        await eventually(lambda: True)
        assert await post(http, "/unsubscribe", topic="/rooms/b", user="ann", code=4010) == 1
        frame = await ann.recv()
        assert frame == ServerUnsubscribe("/rooms/b?user=ann", 4010, "moved")
        await eventually(lambda: leaves == [("/rooms/b", 4010)])
        await ann.send("/rooms/a?user=ann", "still here")
        assert await ann.recv_data("/rooms/a?user=ann") == "still here"
        assert await post(http, "/unsubscribe", topic="/rooms/b", user="ann", code=4010) == 0


@pytest.mark.parametrize("ended_by", ["server", "client"])
async def test_nothing_of_a_topic_follows_the_frame_that_ends_it(ended_by: str) -> None:
    """Broadcasts go on every 10 ms while the topic ends, its join body taking 0.3 s to
    unwind. Moved out by the server, the client gets none of them after the ``UNSUBSCRIBE``
    notice. Leaving on its own, it may get them until its ``OK``, and none after it."""
    app, _ = make_app()
    SLOW.reset([])
    async with serving(app) as (url, http), MultiplexClient.connect(f"{url}/rooms/a") as ann:
        assert isinstance(await ann.subscribe("/lingering/x"), Ok)
        await eventually(lambda: len(SLOW.runs) == 1, what="the join")
        [client_id] = SLOW.runs
        await post(http, "/pump", topic="/lingering/x", count=150)  # 1.5 s at most
        await asyncio.sleep(0.1)
        if ended_by == "server":
            ending: ServerFrame = ServerUnsubscribe("/lingering/x", 4010, "moved")
            params = {"topic": "/lingering/x", "client_id": client_id, "code": 4010}
            assert await post(http, "/unsubscribe", **params) == 1
        else:
            ending = Ok("UNSUBSCRIBE", ("/lingering/x",))
            await ann.send_raw(f"{SEP}UNSUBSCRIBE{SEP}/lingering/x")
        frames = [await ann.recv()]
        while frames[-1] != ending:
            frames.append(await ann.recv())
        # The unwinding join, and as long again: what the server sends meanwhile.
        with contextlib.suppress(TimeoutError):
            while True:
                frames.append(await ann.recv(timeout=0.6))
    end = frames.index(ending)
    before = [f for f in frames[:end] if isinstance(f, DataFrame)]
    assert before and before[0].topic == "/lingering/x"  # the broadcasts were reaching it
    assert [f for f in frames[end + 1 :] if isinstance(f, DataFrame)] == []


async def test_subscribe_a_socket_from_the_server_runs_the_topics_guards() -> None:
    async with served() as (url, http, _), MultiplexClient.connect(f"{url}/rooms/a") as client:
        await client.send("/rooms/a", "me?")
        client_id = str(await client.recv_data("/rooms/a"))
        assert await post(http, "/subscribe", client_id=client_id, topic="/rooms/news") == 1
        assert await client.recv() == Ok("SUBSCRIBE", ("/rooms/news",))
        await client.send("/rooms/news", "breaking")
        assert await client.recv_data("/rooms/news") == "breaking"
        assert await post(http, "/subscribe", client_id=client_id, topic="/private") == {"refused": 403}
        assert await post(http, "/subscribe", client_id="nobody.1", topic="/rooms/news") == 0


@dataclasses.dataclass
class Race:
    """A client whose SUBSCRIBE of ``/slow/x`` raced a ``broker.subscribe`` of it."""

    client: MultiplexClient
    client_id: str
    posting: asyncio.Task[Any]  # the ``POST /subscribe``, answered once the race is over
    http: httpx.AsyncClient
    leaves: list[tuple[str, int]]


@contextlib.asynccontextmanager
async def subscribe_race(verdicts: list[bool]) -> AsyncIterator[Race]:
    """The client SUBSCRIBEs ``/slow/x``; while its guard waits, ``broker.subscribe`` of
    the same topic is called; then the guard is released with `verdicts` (one per run)."""
    SLOW.reset(verdicts)
    async with served() as (url, http, leaves), MultiplexClient.connect(f"{url}/rooms/a") as client:
        await client.send("/rooms/a", "me?")
        client_id = str(await client.recv_data("/rooms/a"))
        await client.send_raw(encode_subscribe("/slow/x"))
        await eventually(lambda: SLOW.runs == ["/slow"], what="the guard to start")
        posting = asyncio.create_task(post(http, "/subscribe", client_id=client_id, topic="/slow/x"))
        await eventually(lambda: SLOW.calls == ["/slow/x"], what="the command")
        await asyncio.sleep(0.05)  # from the endpoint to the socket: no I/O on the memory broker
        assert not posting.done()  # it waits for the outcome of the client's own SUBSCRIBE
        SLOW.release.set()
        yield Race(client, client_id, posting, http, leaves)


async def test_subscribing_a_socket_again_changes_nothing_even_while_its_guards_run() -> None:
    """``broker.subscribe`` is idempotent: a socket that has the topic counts 0 and is sent
    nothing; so does one whose own SUBSCRIBE of it was in its guards and went through (the
    call waits for it). It ends with one subscription and one leave. The client asking twice
    is told (``ERR`` 409)."""
    async with subscribe_race([True]) as race:
        assert await race.client.recv() == Ok("SUBSCRIBE", ("/slow/x",))
        assert await race.posting == 0
        for topic in ("/slow/x", "/rooms/a"):
            assert await post(race.http, "/subscribe", client_id=race.client_id, topic=topic) == 0
        again = await race.client.subscribe("/slow/x")
        assert again == Err(Reason.ALREADY_SUBSCRIBED, "SUBSCRIBE", ("/slow/x",))
        assert SLOW.runs == ["/slow"]  # only the first SUBSCRIBE ran the guard
        await race.client.send("/rooms/a", "still here")
        assert await race.client.recv() == DataFrame("/rooms/a", "still here", None)  # nothing between
    await eventually(lambda: sorted(race.leaves) == [("/rooms/a", 1000), ("/slow/x", 1000)])


async def test_subscribing_while_the_clients_own_subscribe_is_refused_subscribes_it() -> None:
    """The client's SUBSCRIBE is refused by its guard while ``broker.subscribe`` of the same
    topic waits: the call then runs the guards itself, and its own verdict decides (1)."""
    async with subscribe_race([False, True]) as race:
        assert await race.client.recv() == Err("403 Forbidden", "SUBSCRIBE", ("/slow/x",))
        assert await race.client.recv() == Ok("SUBSCRIBE", ("/slow/x",))
        assert await race.posting == 1
        assert SLOW.runs == ["/slow", "/slow"]


async def test_a_server_side_subscribe_whose_socket_ends_in_its_guards_adds_nothing() -> None:
    """The socket closes while a ``broker.subscribe`` of it is in the topic's guards: the
    call counts 0, and the topic, accepted too late, leaves at once with the socket's own
    end instead of outliving it (no client, no member left behind)."""
    SLOW.reset([True])
    async with served() as (url, http, leaves):
        async with MultiplexClient.connect(f"{url}/rooms/a") as client:
            await client.send("/rooms/a", "me?")
            client_id = str(await client.recv_data("/rooms/a"))
            posting = asyncio.create_task(post(http, "/subscribe", client_id=client_id, topic="/slow/x"))
            await eventually(lambda: SLOW.runs == ["/slow"], what="the guard to start")
        await eventually(lambda: leaves == [("/rooms/a", 1000)], what="the socket's end")
        SLOW.release.set()
        assert await posting == 0
        await eventually(lambda: sorted(leaves) == [("/rooms/a", 1000), ("/slow/x", 1000)])
        assert (await http.get("/clients")).json() == 0


async def test_a_server_side_subscribe_whose_socket_ends_while_the_backend_subscribes_adds_nothing() -> None:
    """The socket closes after a ``broker.subscribe`` passed the topic's guards but while the
    backend is still subscribing the topic: the session, which the socket's teardown made
    leave, must not open afterwards. The call counts 0; one leave; no subscriber left."""
    SLOW.reset([True])
    SLOW.release.set()
    app, leaves = make_app()
    broker = app.state.wsroute.broker
    hold = threading.Event()
    backend_subscribe = broker.backend.subscribe

    async def slow_backend(topic: str) -> None:
        if topic == "/slow/y":
            SLOW.runs.append("backend")
            await asyncio.to_thread(hold.wait, 10)
        await backend_subscribe(topic)

    broker.backend.subscribe = slow_backend
    async with serve(app) as url, httpx.AsyncClient(base_url=f"http://{url}", trust_env=False) as http:
        async with MultiplexClient.connect(f"{url}/rooms/a") as client:
            await client.send("/rooms/a", "me?")
            client_id = str(await client.recv_data("/rooms/a"))
            posting = asyncio.create_task(post(http, "/subscribe", client_id=client_id, topic="/slow/y"))
            await eventually(lambda: SLOW.runs == ["/slow", "backend"], what="the backend's subscribe")
        await eventually(lambda: ("/slow/y", 1000) in leaves, what="the topic's leave")
        hold.set()
        assert await posting == 0
        await asyncio.sleep(0.1)
        assert sorted(leaves) == [("/rooms/a", 1000), ("/slow/y", 1000)]
        assert broker.local_topics() == {}
        assert (await http.get("/clients")).json() == 0


async def test_commands_check_their_arguments() -> None:
    app, _ = make_app()
    broker = app.state.wsroute.broker
    with pytest.raises(ValueError, match="exactly one"):
        await broker.disconnect(code=1000)
    with pytest.raises(ValueError, match="exactly one"):
        await broker.disconnect(client_id="a", user="b")
    with pytest.raises(ValueError, match="close code 1005"):
        await broker.disconnect(user="b", code=1005)


# --- a refused connection whose guard read its client id ---------------------------------------


async def test_a_refused_connection_is_not_kept_by_its_client_id() -> None:
    """A guard that logs `channel.client_id` and then refuses: the refused session must not
    stay named by the broker (it was kept for ever), and a command by that id must not reach
    the socket the refused SUBSCRIBE came on."""
    seen: list[str] = []

    def audited(channel: Channel) -> None:
        seen.append(channel.client_id)  # e.g. to log which client was refused
        raise Reject(403, "no")

    ws = WsRouter()

    @ws.message("/private/{room}")
    async def private(data: str, _: Annotated[None, Depends(audited)]) -> None: ...

    @ws.message("/rooms/{room}")
    async def said(data: str) -> None: ...

    app = FastAPI()
    ws.install(app)
    async with asyncio.timeout(30), serve(app) as url:
        for _ in range(3):
            with pytest.raises(Exception, match="403"):
                async with connect(f"ws://{url}/private/x"):
                    pass
        async with MultiplexClient.connect(f"ws://{url}/rooms/a") as ann:
            assert await ann.subscribe("/private/y") == Err("403 Forbidden", "SUBSCRIBE", ("/private/y",))
            assert len(seen) == 4
            assert await ws.broker.disconnect(client_id=seen[-1], code=4000) == 0
            await ann.send("/rooms/a", "still here")  # the socket stayed open
            assert len(ws.broker.clients) == 0


# --- commands for a multiplexed socket a disconnect is already closing ---------------------------


async def test_a_multiplexed_socket_being_closed_is_not_counted_again_by_topic() -> None:
    """`disconnect(user="ann")` closes her multiplexed socket; while it flushes (she never
    reads), an `unsubscribe` of one of its topics counts nothing, and both topics leave with
    the disconnect's code, as the client sees the socket close with it."""
    app, leaves = make_app(close_timeout=30.0, max_queue=64)
    broker = app.state.wsroute.broker
    async with serving(app) as (url, http):
        async with never_reading(url, multiplexed=True) as slow:
            slow.send(client_frame(OP_TEXT, encode_subscribe("/rooms/b?user=ann").encode()))
            async with connect(f"{url}/rooms/a?user=bob", max_queue=None) as bob:
                await eventually(lambda: broker.local_topics().get("/rooms/b") == 1, what="/rooms/b")
                await back_up(broker, slow, bob, subscribers=2)
                assert await post(http, "/disconnect", user="ann", code=4003) == 1
                assert await post(http, "/disconnect", user="ann", code=4003) == 0
                assert await post(http, "/unsubscribe", topic="/rooms/b", user="ann", code=4010) == 0
                await bob.close()
        await eventually(lambda: len(leaves) == 3, timeout=10, what="the leaves")
        assert sorted(leaves) == [("/rooms/a", 1000), ("/rooms/a", 4003), ("/rooms/b", 4003)]


async def test_a_server_side_subscribe_to_a_socket_that_began_closing_adds_nothing() -> None:
    """`broker.subscribe` runs the topic's guards; a `disconnect` of that socket meanwhile:
    it answers 0 ("closed meanwhile") and the socket gets no topic (before: 1, and the topic
    subscribed and joined on a socket being put out)."""
    SLOW.reset([True])
    app, leaves = make_app(close_timeout=3.0, max_queue=64)
    broker = app.state.wsroute.broker
    async with serving(app) as (url, http):
        async with (
            never_reading(url, multiplexed=True) as slow,
            connect(f"{url}/rooms/a?user=bob", max_queue=None) as bob,
        ):
            slow_session = await back_up(broker, slow, bob, subscribers=2)
            subscribing = asyncio.create_task(
                post(http, "/subscribe", client_id=slow_session.client_id, topic="/slow/x")
            )
            await eventually(lambda: SLOW.runs == ["/slow"], what="the guard to start")
            assert await post(http, "/disconnect", user="ann", code=4003) == 1
            SLOW.release.set()
            assert await subscribing == 0
            assert "/slow/x" not in broker.local_topics()
            await bob.close()
        # Its guards accepted it, so its leave runs (with the socket's code), as for a
        # topic whose socket ended while its guards ran.
        await eventually(lambda: len(leaves) == 3, timeout=15, what="the leaves")
        assert sorted(leaves) == [("/rooms/a", 1000), ("/rooms/a", 4003), ("/slow/x", 4003)]


async def test_a_join_that_returns_after_its_socket_began_closing_is_not_announced() -> None:
    """Ann's join is still running when `disconnect` begins closing her socket (she never
    reads, so the close waits): watchers must not be told she joined."""
    app, _ = make_app(close_timeout=3.0, max_queue=64)
    broker = app.state.wsroute.broker
    watch = "/rooms/a?user=w"
    async with (
        serving(app) as (url, http),
        MultiplexClient.connect(f"{url}{watch}", presence=True) as watcher,
    ):
        assert (await watcher.recv_presence(watch))[0] == "state"
        await watcher.recv_presence(watch)  # the watcher's own join
        async with (
            never_reading(url, "/rooms/a?user=ann&delay=1.5", multiplexed=True) as slow,
            connect(f"{url}/rooms/a?user=bob", max_queue=None) as bob,
        ):
            slow_session = await back_up(broker, slow, bob, subscribers=3)
            # By client id: her user is known once her join returned.
            assert await post(http, "/disconnect", client_id=slow_session.client_id, code=4003) == 1
            joined: list[str | None] = []
            with contextlib.suppress(TimeoutError):
                for _ in range(10):
                    _, diff = await watcher.recv_presence(watch, timeout=2.5)
                    joined += [member["user"] for member in diff["joins"].values()]
            assert "ann" not in joined, joined
