"""Presence on the Redis backend: members of every worker seen from any process, diffs
across workers, and the members of a killed worker removed within the stated bound, with
their leaves announced (docs/presence.md)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio
from fastapi import FastAPI
from websockets.exceptions import ConnectionClosed

from apps.presence_app import create_app
from support.processes import HOST, server_process
from support.redis_server import require_redis
from wsroute import Broker, Channel, WsRouter
from wsroute.broker import redis_presence
from wsroute.broker.redis import RedisBackend
from wsroute.errors import BrokerUnavailable
from wsroute.multiplex.codec import Err, Ok, ServerUnsubscribe
from wsroute.presence import Member, PresenceDiff, PresenceStats
from wsroute.testing import MultiplexClient, connect, eventually, serve

pytestmark = pytest.mark.anyio

APP = "apps.presence_app:app"
WATCHED = "/rooms/r?user=watcher"  # the watcher's connect topic: its name on the wire has the query
TTL = 1.0  # presence_ttl of these tests: a dead worker's members go within TTL + TTL/3


@pytest.fixture
def broker_url() -> str:
    return f"{require_redis()}?channel_prefix=wsroute-test-{uuid.uuid4().hex[:12]}:&presence_ttl={TTL}"


async def get(port: int, path: str, **params: str) -> Any:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        response = await http.get(f"http://{HOST}:{port}{path}", params=params)
        response.raise_for_status()
        return response.json()


async def post(port: int, path: str, **params: str | int) -> Any:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        response = await http.post(f"http://{HOST}:{port}{path}", params=params)
        response.raise_for_status()
        return response.json()


@contextlib.asynccontextmanager
async def started_backends(url: str, count: int) -> AsyncIterator[list[RedisBackend]]:
    """`count` Redis backends on `url` (processes, as far as presence can tell), started, and
    stopped when the block ends."""
    backends = [RedisBackend(url) for _ in range(count)]
    for backend in backends:
        await backend.start(lambda *args: None)
    try:
        yield backends
    finally:
        for backend in backends:
            await backend.stop()


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll `check` (it asks another process over HTTP) until true, for at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.05)


async def test_members_of_two_workers_are_seen_everywhere_and_a_killed_workers_leave(
    broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WSROUTE_TEST_BROKER", broker_url)
    with server_process(APP) as a, server_process(APP) as b:
        async with (
            MultiplexClient.connect(f"ws://{HOST}:{a.port}{WATCHED}", presence=True) as watcher,
            connect(f"ws://{HOST}:{a.port}/rooms/r?user=ann"),
            connect(f"ws://{HOST}:{b.port}/rooms/r?user=ann"),  # Ann's second tab, other worker
            connect(f"ws://{HOST}:{b.port}/rooms/r?user=bob"),
        ):
            users: dict[str, str | None] = {}

            async def seen_by_watcher() -> None:
                while sorted(filter(None, users.values())) != ["ann", "ann", "bob", "watcher"]:
                    kind, body = await watcher.recv_presence(WATCHED)
                    changes = body if kind == "state" else body["joins"]
                    users.update({cid: v["user"] for cid, v in changes.items()})

            await asyncio.wait_for(seen_by_watcher(), 10)
            # From either worker, and from a third process that only reads.
            for port in (a.port, b.port):
                await eventually(lambda: True)
                listed = await get(port, "/presence", topic="/rooms/r")
                assert sorted(m["user"] for m in listed) == ["ann", "ann", "bob", "watcher"]
                assert await get(port, "/stats", topic="/rooms/r") == {"clients": 4, "users": 3}
            # The third process is a bare Broker, as docs/presence.md's script has it.
            reader = Broker(broker_url)
            reader.topic("/rooms/{room}", presence=True)
            async with reader:
                assert await reader.presence_stats("/rooms/r") == PresenceStats(4, 3)
                assert len(await reader.presence("/rooms/r")) == 4
                bob = next(m for m in await reader.presence("/rooms/r") if m.user == "bob")
                bob_pid = bob.info["pid"]  # type: ignore[index,call-overload]

            # Worker B dies without running its leaves: its members go within the bound,
            # and the watcher on A is told.
            b.kill()
            killed = time.monotonic()
            left: set[str | None] = set()
            while left != {"ann", "bob"}:
                kind, body = await asyncio.wait_for(watcher.recv_presence(WATCHED), TTL * 4)
                if kind == "diff":
                    left.update(v["user"] for v in body["leaves"].values())
            elapsed = time.monotonic() - killed
            assert elapsed < TTL + TTL / 3 + 1.0, f"members of a dead worker left after {elapsed:.1f}s"
            listed = await get(a.port, "/presence", topic="/rooms/r")
            assert sorted(m["user"] for m in listed) == ["ann", "watcher"]
            assert all(m["info"]["pid"] != bob_pid for m in listed)


async def test_an_update_on_one_worker_reaches_the_watchers_and_lists_of_the_other(
    broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``channel.update_presence`` on B: A's watcher gets the member again under its client
    id with the new info, A's list shows it, and the counts stay (Redis's users hash too)."""
    monkeypatch.setenv("WSROUTE_TEST_BROKER", broker_url)
    with server_process(APP) as a, server_process(APP) as b:
        async with (
            MultiplexClient.connect(f"ws://{HOST}:{a.port}{WATCHED}", presence=True) as watcher,
            connect(f"ws://{HOST}:{b.port}/rooms/r?user=ann") as ann,
        ):
            await ann.send("me?")
            ann_id = str(await ann.recv())
            known: set[str] = set()
            while ann_id not in known:
                kind, body = await asyncio.wait_for(watcher.recv_presence(WATCHED), 10)
                known.update(body if kind == "state" else body["joins"])
            b_pid = int(await get(b.port, "/health"))
            await ann.send("status:away")
            assert await ann.recv() == "updated: True"
            kind, body = await asyncio.wait_for(watcher.recv_presence(WATCHED), 10)
            assert (kind, body["leaves"]) == ("diff", {})
            assert body["joins"][ann_id] == {"user": "ann", "info": {"pid": b_pid, "status": "away"}}
            listed = await get(a.port, "/presence", topic="/rooms/r")
            assert [m["info"] for m in listed if m["user"] == "ann"] == [{"pid": b_pid, "status": "away"}]
            assert await get(a.port, "/stats", topic="/rooms/r") == {"clients": 2, "users": 2}


async def test_a_dead_nodes_members_are_swept_once_by_concurrent_sweepers(broker_url: str) -> None:
    published: list[str] = []
    async with started_backends(broker_url, 3) as (dead, one, two):
        await dead.presence_add("/rooms/x", Member("c1", "ann", None))
        await dead.presence_add("/rooms/y", Member("c2", None, {"k": 1}))
        assert dead._heartbeat is not None
        dead._heartbeat.cancel()  # it stops heartbeating, as a killed process does

        async def record(topic: str, diff: str) -> None:
            published.append(diff)

        one.publish_presence = record  # type: ignore[method-assign]
        two.publish_presence = record  # type: ignore[method-assign]
        await asyncio.sleep(TTL + 0.2)
        counts = await asyncio.gather(one.sweep(), two.sweep())
        assert sorted(counts) == [0, 2]
        assert len(published) == 2  # one leave diff per topic, from one sweeper
        assert await one.presence_members("/rooms/x") == []
        assert (await one.presence_stats("/rooms/x")).users == 0


async def test_a_process_swept_while_paused_adds_its_members_again_as_they_are_now(
    broker_url: str,
) -> None:
    """A worker whose heartbeats stopped long enough for the others to sweep it (a long
    pause, a frozen VM) finds out at its next heartbeat and stores its members again, each
    as it is then: one updated while the re-adding goes on keeps its update."""
    async with started_backends(broker_url, 2) as (paused, reader):
        await paused.presence_add("/rooms/p", Member("p.1", "ann", {"v": 1}))
        await paused.presence_add("/rooms/p", Member("p.2", "bob", {"v": 1}))
        assert paused._heartbeat is not None
        paused._heartbeat.cancel()
        await asyncio.sleep(TTL + 0.2)
        assert await reader.sweep() == 2
        assert await reader.presence_members("/rooms/p") == []

        re_add = paused.presence_update
        updated: list[asyncio.Task[None]] = []

        async def update_bob_meanwhile(topic: str, diff: PresenceDiff) -> None:
            if not updated:  # Bob's info changes while the members are being added back
                bob = PresenceDiff()
                bob.join(Member("p.2", "bob", {"v": 2}), replacing=True)
                updated.append(asyncio.create_task(re_add("/rooms/p", bob)))
            await re_add(topic, diff)

        paused.presence_update = update_bob_meanwhile  # type: ignore[method-assign]
        paused._heartbeat = asyncio.create_task(paused._beat())  # it wakes up

        async def both_back() -> bool:
            return len(await reader.presence_members("/rooms/p")) == 2

        await until(both_back, TTL * 3, "the members added again")
        members = {m.client_id: m.info for m in await reader.presence_members("/rooms/p")}
        assert members == {"p.1": {"v": 1}, "p.2": {"v": 2}}
        assert await reader.presence_stats("/rooms/p") == PresenceStats(2, 2)


async def test_a_read_sweeps_a_dead_process_in_its_own_round_trip(broker_url: str) -> None:
    """`presence_stats` and `presence_members` never count a member of a dead process, and
    each is one script on the connection: the sweep runs inside it, and its leaves are
    announced once."""
    published: list[str] = []
    scripts: list[Any] = []

    async def record(topic: str, diff: str) -> None:
        published.append(diff)

    async def counting(what: str, script: Any, args: Any, on_turn: Any = None) -> Any:
        scripts.append(script)
        return await run(what, script, args, on_turn)

    async with started_backends(broker_url, 2) as (dead, reader):
        await dead.presence_add("/rooms/s", Member("c1", "ann", None))
        await dead.presence_add("/rooms/s", Member("c2", "bob", None))
        await reader.presence_add("/rooms/s", Member("c3", "cid", {"k": 1}))
        assert await reader.presence_stats("/rooms/s") == PresenceStats(3, 3)
        for backend in (dead, reader):
            assert backend._heartbeat is not None
            backend._heartbeat.cancel()  # the reader's own loop must not do the sweep
        reader.publish_presence = record  # type: ignore[method-assign]
        run = reader._run
        reader._run = counting  # type: ignore[method-assign]
        await asyncio.sleep(TTL + 0.2)  # both past their deadline: the first read takes both
        assert await reader.presence_stats("/rooms/s") == PresenceStats(0, 0)
        assert scripts == [redis_presence.STATS_SCRIPT]
        assert [sorted(orjson.loads(diff)["leaves"]) for diff in published] == [["c1", "c2", "c3"]]
        # A process that writes again after a sweep stores its other members again; this one
        # holds only its new member, as a restarted one would.
        dead._present.clear()
        await dead.presence_add("/rooms/s", Member("c4", "dan", None))
        await asyncio.sleep(TTL + 0.2)
        assert await reader.presence_members("/rooms/s") == []
        assert scripts[1:] == [redis_presence.MEMBERS_SCRIPT]
        assert [sorted(orjson.loads(diff)["leaves"]) for diff in published[1:]] == [["c4"]]


async def test_a_read_that_cannot_announce_its_sweep_still_answers(
    broker_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The dead members are gone from Redis whether or not their leaves could be published:
    the read that swept them answers, and the lost announcement is logged."""

    async def unreachable(topic: str, diff: str) -> None:
        raise BrokerUnavailable("the Redis broker at redis://… is not reachable (test)")

    async with started_backends(broker_url, 2) as (dead, reader):
        await dead.presence_add("/rooms/u", Member("c1", "ann", None))
        assert dead._heartbeat is not None
        dead._heartbeat.cancel()
        reader.publish_presence = unreachable  # type: ignore[method-assign]
        await asyncio.sleep(TTL + 0.2)
        with caplog.at_level("WARNING", logger="wsroute"):
            assert await reader.presence_state("/rooms/u") == "{}"
        assert "leaves of 1 dead members of /rooms/u not announced" in caplog.text


async def test_a_ban_from_an_http_route_closes_the_users_connections_on_every_worker(
    broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WSROUTE_TEST_BROKER", broker_url)
    with server_process(APP) as a, server_process(APP) as b:
        async with (
            connect(f"ws://{HOST}:{a.port}/rooms/r?user=mallory") as on_a,
            MultiplexClient.connect(f"ws://{HOST}:{b.port}/rooms/r?user=mallory") as on_b,
            connect(f"ws://{HOST}:{b.port}/rooms/r?user=bob") as bob,
        ):
            await on_b.subscribe("/rooms/s?user=mallory")
            await eventually(lambda: True)

            async def all_present() -> bool:
                return int((await get(a.port, "/stats", topic="/rooms/r"))["clients"]) == 3

            await until(all_present, 5, "3 members")
            async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
                ban = {"user": "mallory", "code": 4003}
                response = await http.post(f"http://{HOST}:{a.port}/ban", params=ban)
            assert response.json() == 2  # one socket on each worker
            for socket in (on_a.websocket, on_b.websocket):
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await socket.recv()
                assert closed.value.rcvd is not None
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4003, "banned")
            # Every leave ran once, with the ban's code: one on A, two topics on B.
            async def left_once() -> bool:
                codes = (await get(a.port, "/leaves"), await get(b.port, "/leaves"))
                return codes == ([4003], [4003, 4003])

            await until(left_once, 5, "one leave per connection, with code 4003")
            assert await post(a.port, "/ban", user="mallory", code=4003) == 0  # idempotent
            await bob.send("still here")  # the others stay
            assert (await get(b.port, "/stats", topic="/rooms/r")) == {"clients": 1, "users": 1}


async def test_unsubscribe_and_subscribe_reach_sockets_on_another_worker(
    broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Called on worker A, each command acts on B's sockets too: a topic closed for a user
    on both workers, a socket on B subscribed to a topic, and a guard's refusal on B
    raised on A with its status."""
    monkeypatch.setenv("WSROUTE_TEST_BROKER", broker_url)
    with server_process(APP) as a, server_process(APP) as b:
        async with (
            MultiplexClient.connect(f"ws://{HOST}:{b.port}/rooms/r?user=carol") as on_b,
            connect(f"ws://{HOST}:{a.port}/rooms/r?user=carol") as on_a,
        ):
            await on_b.send("/rooms/r?user=carol", "me?")
            client_id = str(await on_b.recv_data("/rooms/r?user=carol"))
            await on_a.send("me?")
            assert await on_a.recv()  # joined: carol is known on A too

            assert await post(a.port, "/subscribe", client_id=client_id, topic="/rooms/news") == 1
            assert await on_b.recv() == Ok("SUBSCRIBE", ("/rooms/news",))
            # A retry (an HTTP route called twice) changes nothing and sends nothing.
            assert await post(a.port, "/subscribe", client_id=client_id, topic="/rooms/news") == 0
            refused = await post(a.port, "/subscribe", client_id=client_id, topic="/private/x")
            assert refused == {"refused": 403}
            # The client hears of the refusal as of its own SUBSCRIBE's.
            assert await on_b.recv() == Err("403 Forbidden", "SUBSCRIBE", ("/private/x",))
            assert await post(a.port, "/subscribe", client_id="nobody.1", topic="/rooms/news") == 0

            assert await post(a.port, "/unsubscribe", topic="/rooms/r", user="carol", code=4010) == 2
            assert await on_b.recv() == ServerUnsubscribe("/rooms/r?user=carol", 4010, "moved")
            with pytest.raises(ConnectionClosed) as closed:
                await on_a.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4010

            async def left_once() -> bool:
                return (await get(a.port, "/leaves"), await get(b.port, "/leaves")) == ([4010], [4010])

            await until(left_once, 5, "one leave on each worker, with code 4010")
            assert await post(a.port, "/unsubscribe", topic="/rooms/r", user="carol", code=4010) == 0
            await on_b.send("/rooms/news", "me?")  # B's socket keeps its other topic
            news_id = str(await on_b.recv_data("/rooms/news"))
            assert news_id != client_id and news_id.split(".")[0] == client_id.split(".")[0]


async def test_a_sweep_takes_every_dead_process_however_many_died(broker_url: str) -> None:
    """One sweep script takes 16 dead processes; a sweep runs scripts until none is left, so
    20 workers killed at once all leave within the crash bound."""
    async with started_backends(broker_url, 21) as backends:
        *dead, sweeper = backends
        for n, backend in enumerate(dead):
            await backend.presence_add("/rooms/host", Member(f"c{n}", f"u{n}", None))
        for backend in dead:
            assert backend._heartbeat is not None
            backend._heartbeat.cancel()  # they stop heartbeating, as killed processes do
        assert (await sweeper.presence_stats("/rooms/host")).clients == 20
        await asyncio.sleep(TTL + 0.2)
        assert await sweeper.sweep() == 20
        assert await sweeper.presence_members("/rooms/host") == []


async def test_join_and_leave_cycles_leave_no_keys_behind(broker_url: str) -> None:
    """1,000 members that come and go leave nothing in Redis nor in the process: the hashes
    empty out as their last field goes, and the process's entry among the heartbeating
    ones is swept once its deadline passes."""
    async with started_backends(broker_url, 1) as (backend,):
        client = redis.asyncio.Redis.from_url(require_redis())
        try:
            for n in range(1000):
                await backend.presence_add("/rooms/c", Member(f"c{n}", f"u{n % 7}", {"n": n}))
                await backend.presence_remove("/rooms/c", f"c{n}")
            assert backend._present == {}
            assert await backend.presence_stats("/rooms/c") == PresenceStats(0, 0)
            pattern = f"{backend.channel_prefix}presence*"
            left = sorted([key.decode() async for key in client.scan_iter(match=pattern)])
            assert left == [f"{backend.channel_prefix}presence-nodes"]
            assert backend._heartbeat is not None
            backend._heartbeat.cancel()  # no sweep of its own: the one below must find it
            await asyncio.sleep(TTL + 0.2)
            assert await backend.sweep() == 0
            assert [key async for key in client.scan_iter(match=pattern)] == []
        finally:
            await client.aclose()


async def test_presence_ttl_is_15_seconds_unless_the_url_or_the_backend_says_otherwise() -> None:
    """The default, the URL, the argument, and a later assignment: each checked alike."""
    assert RedisBackend("redis://127.0.0.1:6379/0").presence_ttl == 15.0
    assert RedisBackend("redis://127.0.0.1:6379/0?presence_ttl=2.5").presence_ttl == 2.5
    assert RedisBackend("redis://127.0.0.1:6379/0", presence_ttl=4).presence_ttl == 4
    for bad in ("soon", "0", "-1", "inf", "nan"):
        with pytest.raises(ValueError, match="presence_ttl"):
            RedisBackend(f"redis://127.0.0.1:6379/0?presence_ttl={bad}")
    backend = RedisBackend("redis://127.0.0.1:6379/0")
    backend.presence_ttl = 3.0
    assert backend.presence_ttl == 3.0
    for wrong in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="presence_ttl must be a finite number"):
            backend.presence_ttl = wrong
    assert backend.presence_ttl == 3.0  # a refused value changes nothing


async def test_presence_changes_of_another_process_reach_app_code(broker_url: str) -> None:
    here, there = create_app(broker_url).state.wsroute.broker, create_app(broker_url).state.wsroute.broker
    async with here, there, here.presence_changes("/rooms/z") as changes:
        await there.track("/rooms/z", Member("x.1", "ann", None))
        change = await asyncio.wait_for(anext(changes), 5)
        assert [m.user for m in change.joins] == ["ann"]
        await there.untrack("/rooms/z", "x.1")
        change = await asyncio.wait_for(anext(changes), 5)
        assert [m.client_id for m in change.leaves] == ["x.1"]


async def test_a_process_without_presence_never_hands_a_diff_to_its_sockets(broker_url: str) -> None:
    """A process that configures no `ws.topic` (an older deploy, a separate service) shares a
    topic's Redis channel with one that has presence on it: the diffs there are not messages.
    Its subscriber gets only the broadcasts, before and after the other process's joins."""
    plain = WsRouter(broker=broker_url)

    @plain.message("/rooms/{room}")
    async def echo(data: str, channel: Channel) -> None:
        await channel.send(data)

    app = FastAPI()
    plain.install(app)
    there = create_app(broker_url).state.wsroute.broker
    async with there, serve(app) as url, connect(f"ws://{url}/rooms/z") as client:
        # Messages are handled after the join, so after Redis confirmed the subscription.
        await client.send("subscribed?")
        assert await client.recv() == "subscribed?"
        await there.broadcast_to("/rooms/z", "before")
        assert await client.recv() == "before"
        # Each diff is flushed (batched for 50 ms) and delivered before the next broadcast.
        await there.track("/rooms/z", Member("x.1", "ann", None))
        await asyncio.sleep(0.3)
        await there.broadcast_to("/rooms/z", "joined")
        assert await client.recv() == "joined"
        await there.untrack("/rooms/z", "x.1")
        await asyncio.sleep(0.3)
        await there.broadcast_to("/rooms/z", "left")
        assert await client.recv() == "left"


async def test_members_read_back_from_redis_exactly_as_they_were_stored(broker_url: str) -> None:
    """Any JSON info (quotes, non-ASCII, nesting, null) and a missing user survive the trip,
    as members and as the state JSON a watcher is sent (Redis builds that text itself)."""
    backend = RedisBackend(broker_url)
    await backend.start(lambda *args: None)
    stored = [
        Member("AY0rzH2X.1", "zoë", {"name": 'Zoë "Z" 🦊', "tags": ["a", {"b": None}], "n": 1.5}),
        Member("AY0rzH2X.2", None, None),
        Member("AY0rzH2X.3", "bob", "שלום\n"),
    ]
    try:
        assert await backend.presence_members("/rooms/empty") == []
        for member in stored:
            await backend.presence_add("/rooms/q", member)
        members = await backend.presence_members("/rooms/q")
        assert sorted(members, key=lambda m: m.client_id) == stored
        state = orjson.loads(await backend.presence_state("/rooms/q"))
        assert state == {m.client_id: m.as_json() for m in stored}
        assert await backend.presence_state("/rooms/empty") == "{}"
        assert await backend.presence_stats("/rooms/q") == PresenceStats(3, 2)
    finally:
        await backend.stop()


async def test_member_reads_waiting_for_the_connection_are_written_once(broker_url: str) -> None:
    """A join storm on a busy worker asks for one topic's list hundreds of times; reads that
    wait for their turn together are one read, a sharer that goes away does not take it with
    it, and a read asked after it was written is a read of its own (another process may have
    written in between)."""
    backend = RedisBackend(broker_url)
    await backend.start(lambda *args: None)
    topic, ann = "/rooms/storm", Member("c1", "ann", None)
    run = backend._run
    written: list[str] = []
    late: list[asyncio.Task[list[Member]]] = []

    async def counting(what: str, script: Any, args: Any, on_turn: Any = None) -> Any:
        if script is not redis_presence.MEMBERS_SCRIPT:
            return await run(what, script, args, on_turn)

        def turn() -> None:
            if on_turn is not None:
                on_turn()
            written.append(topic)
            if not late:  # asked right after the first read was written
                late.append(asyncio.create_task(backend.presence_members(topic)))

        return await run(what, script, args, turn)

    backend._run = counting  # type: ignore[method-assign]
    try:
        await backend.presence_add(topic, ann)
        async with backend._pub_lock:  # the connection is busy: every read waits its turn
            readers = [asyncio.create_task(backend.presence_members(topic)) for _ in range(50)]
            # Watchers joining meanwhile want the same list as JSON: the same read.
            watchers = [asyncio.create_task(backend.presence_state(topic)) for _ in range(10)]
            await asyncio.sleep(0.05)
            readers[0].cancel()  # the one whose call started the read goes away
        results = await asyncio.gather(*readers[1:])
        assert readers[0].cancelled()
        assert results == [[ann]] * 49
        assert len({id(result) for result in results}) == 49  # a list of its own each
        states = await asyncio.gather(*watchers)
        assert [orjson.loads(state) for state in states] == [{"c1": ann.as_json()}] * 10
        assert await late[0] == [ann]
        assert len(written) == 2  # the 60 waiting reads were one; the late one its own
    finally:
        await backend.stop()
