"""Presence on the memory backend: members named by their join, the lists and counts, the
multiplex extension's state and diffs over a real uvicorn server (docs/presence.md).

The Redis backend's presence (across workers, crashed workers) is in test_presence_redis.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import JsonValue

from wsroute import AppBroker, Broker, BrokerUnavailable, Channel, PresenceInfo, WebSocketStatus, WsRouter
from wsroute.multiplex.codec import Ok
from wsroute.presence import Member, PresenceDiff, PresenceWriter, encode_state
from wsroute.testing import MultiplexClient, connect, eventually, serve

pytestmark = pytest.mark.anyio


EARLY_UPDATES: list[bool] = []
"""What `update_presence` returned in each join (the server runs in this process)."""


def make_app() -> tuple[FastAPI, list[list[str]]]:
    """Rooms with presence: the join names the connection after its ``?user=`` query."""
    ws = WsRouter()
    seen_at_leave: list[list[str]] = []

    @ws.join("/rooms/{room}")
    async def enter(channel: Channel, user: str | None = None) -> PresenceInfo:
        # Not a member until this returns: an update here changes nothing.
        EARLY_UPDATES.append(await channel.update_presence({"early": True}))
        return PresenceInfo(user=user, info={"name": (user or "guest").title()})

    @ws.message("/rooms/{room}")
    async def said(data: str, channel: Channel, user: str | None = None) -> None:
        if data == "me?":
            await channel.send(channel.client_id)
        elif data == "who?":
            await channel.send(json.dumps(sorted(m.user or "-" for m in await channel.presence())))
        elif data.startswith("status:"):
            info = {"name": (user or "guest").title(), "status": data.removeprefix("status:")}
            await channel.send(f"updated: {await channel.update_presence(info)}")
        elif data == "status-flag":
            # Python holds 1 == True; the wire does not: each is a change to announce.
            await channel.update_presence({"name": (user or "guest").title(), "flag": 1})
            info: dict[str, JsonValue] = {"name": (user or "guest").title(), "flag": True}
            await channel.send(f"updated: {await channel.update_presence(info)}")
            info["flag"] = False  # changed after the call: what was announced stays
        elif data == "status!":
            try:
                await channel.update_presence({"when": {1, 2}})  # type: ignore[dict-item]
            except TypeError as exc:
                await channel.send(f"TypeError: {exc}")
        else:
            await channel.broadcast(data)

    @ws.leave("/rooms/{room}")
    async def left(channel: Channel, status: WebSocketStatus) -> None:
        seen_at_leave.append([m.client_id for m in await channel.presence()] + [channel.client_id])

    @ws.message("/lobby")
    async def lobby(data: str, channel: Channel) -> None:
        if data == "status:away":
            try:
                await channel.update_presence("away")
            except ValueError as exc:
                await channel.send(f"ValueError: {exc}")
        else:
            await channel.broadcast(data)

    ws.topic("/rooms/{room}", presence=True)
    app = FastAPI()

    @app.get("/presence")
    async def presence(topic: str, broker: AppBroker) -> list[dict[str, Any]]:
        found = await broker.presence(topic)
        return [{"client_id": m.client_id, "user": m.user, "info": m.info} for m in found]

    @app.get("/stats")
    async def stats(topic: str, broker: AppBroker) -> dict[str, int]:
        counts = await broker.presence_stats(topic)
        return {"clients": counts.clients, "users": counts.users}

    ws.install(app)
    return app, seen_at_leave


@contextlib.asynccontextmanager
async def served() -> AsyncIterator[tuple[str, httpx.AsyncClient, list[list[str]]]]:
    app, seen = make_app()
    async with serve(app) as url, httpx.AsyncClient(base_url=f"http://{url}", trust_env=False) as http:
        yield url, http, seen


async def members(http: httpx.AsyncClient, topic: str) -> list[dict[str, Any]]:
    response = await http.get("/presence", params={"topic": topic})
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()
    return result


async def stats(http: httpx.AsyncClient, topic: str) -> dict[str, int]:
    response = await http.get("/stats", params={"topic": topic})
    response.raise_for_status()
    result: dict[str, int] = response.json()
    return result


async def test_a_member_updates_its_info_in_place_and_watchers_get_it_as_a_join() -> None:
    """``channel.update_presence(info)``: one diff with the member under its client id and
    user, the new info; the lists keep its place and the counts stay; an unchanged info
    announces nothing; the leave carries the last info. Before its join returns a connection
    is no member (False); a topic without presence and an info JSON cannot encode raise."""
    EARLY_UPDATES.clear()
    async with served() as (url, http, _), MultiplexClient.connect(f"{url}/lobby") as watcher:
        await watcher.subscribe("/rooms/u", presence=True)
        assert (await watcher.recv_presence("/rooms/u"))[0] == "state"
        await watcher.recv_presence("/rooms/u")  # the watcher's own join
        async with connect(f"{url}/rooms/u?user=ann") as ann, connect(f"{url}/rooms/u?user=bob") as bob:
            await ann.send("me?")
            ann_id = await ann.recv()
            joined: dict[str, Any] = {}
            while len(joined) < 2:
                joined.update((await watcher.recv_presence("/rooms/u"))[1]["joins"])
            order = [m["client_id"] for m in await members(http, "/rooms/u")]
            assert order.index(ann_id) < order.index(next(iter(set(joined) - {ann_id})))

            await ann.send("status:away")
            assert await ann.recv() == "updated: True"
            away = {"user": "ann", "info": {"name": "Ann", "status": "away"}}
            diff = {"joins": {ann_id: away}, "leaves": {}}
            assert await watcher.recv_presence("/rooms/u") == ("diff", diff)
            listed = await members(http, "/rooms/u")
            assert [m["client_id"] for m in listed] == order  # in its place
            assert next(m for m in listed if m["client_id"] == ann_id)["info"] == away["info"]
            assert await stats(http, "/rooms/u") == {"clients": 3, "users": 2}

            await ann.send("status:away")  # unchanged: nothing to announce
            assert await ann.recv() == "updated: True"
            await bob.send("status:busy")
            assert await bob.recv() == "updated: True"
            _, diff = await watcher.recv_presence("/rooms/u")
            assert [v["user"] for v in diff["joins"].values()] == ["bob"]  # not Ann again
            await bob.send("status-flag")
            assert await bob.recv() == "updated: True"
            flags = []
            while not flags or flags[-1] is not True:
                _, diff = await watcher.recv_presence("/rooms/u")
                flags += [v["info"]["flag"] for v in diff["joins"].values()]
            assert flags[-1] is True  # JSON true after 1, kept as announced
            bob_now = [m["info"] for m in await members(http, "/rooms/u") if m["user"] == "bob"]
            assert bob_now == [{"name": "Bob", "flag": True}]

            await ann.send("status!")
            assert str(await ann.recv()).startswith("TypeError: PresenceInfo.info must be JSON-serialisable")
            await watcher.send("/lobby", "status:away")
            refused = str(await watcher.recv_data("/lobby"))
            assert refused.startswith("ValueError: topic '/lobby' has no presence")
            await ann.close()
            gone = {"joins": {}, "leaves": {ann_id: away}}  # with the info it had last
            assert await watcher.recv_presence("/rooms/u") == ("diff", gone)
    assert EARLY_UPDATES == [False, False, False]


async def test_members_across_connection_kinds_with_user_info_counts_and_diffs() -> None:
    async with served() as (url, http, _), MultiplexClient.connect(f"{url}/lobby") as watcher:
        reply = await watcher.subscribe("/rooms/a", presence=True)
        assert isinstance(reply, Ok)
        items = dict(item.partition("=")[::2] for item in reply.params[1].split(","))
        assert set(items) == {"meta", "presence", "client"}
        mine = items["client"]
        assert await watcher.recv_presence("/rooms/a") == ("state", {})
        kind, diff = await watcher.recv_presence("/rooms/a")
        guest = {"user": None, "info": {"name": "Guest"}}
        assert (kind, diff) == ("diff", {"joins": {mine: guest}, "leaves": {}})

        ann = f"{url}/rooms/a?user=ann"
        async with connect(ann) as ann_1, connect(ann):  # two tabs
            async with connect(f"{url}/rooms/a?user=bob") as bob:
                await ann_1.send("me?")
                ann_id = await ann_1.recv()
                joined: dict[str, Any] = {}
                while len(joined) < 3:
                    kind, diff = await watcher.recv_presence("/rooms/a")
                    assert kind == "diff" and diff["leaves"] == {}
                    joined.update(diff["joins"])
                assert joined[ann_id] == {"user": "ann", "info": {"name": "Ann"}}
                assert sorted(v["user"] for v in joined.values()) == ["ann", "ann", "bob"]
                listed = await members(http, "/rooms/a")
                assert {m["client_id"] for m in listed} == {mine, *joined}
                # One user with two tabs is one user with two connections.
                assert await stats(http, "/rooms/a") == {"clients": 4, "users": 2}
                await bob.send("who?")
                assert json.loads(await bob.recv()) == ["-", "ann", "ann", "bob"]
            await eventually(lambda: True)
            kind, diff = await watcher.recv_presence("/rooms/a")
            assert kind == "diff" and diff["joins"] == {}
            assert [v["user"] for v in diff["leaves"].values()] == ["bob"]
            assert await stats(http, "/rooms/a") == {"clients": 3, "users": 1}
        # Other topics' members are their own; a topic without presence has none to ask.
        assert await members(http, "/rooms/b") == []
        assert (await http.get("/presence", params={"topic": "/lobby"})).status_code == 500


async def test_clients_that_do_not_ask_see_no_presence_frames() -> None:
    async with served() as (url, _, _), MultiplexClient.connect(f"{url}/rooms/a", meta=True) as plain:
        async with connect(f"{url}/rooms/a?user=bob"):
            await plain.send("/rooms/a", "hello")
            assert await plain.recv_data("/rooms/a") == "hello"
        with pytest.raises(TimeoutError):
            await plain.recv(timeout=0.3)


async def test_the_leave_handler_sees_the_topic_without_its_connection() -> None:
    async with served() as (url, _, seen), connect(f"{url}/rooms/a?user=ann") as ann:
        async with connect(f"{url}/rooms/a?user=bob") as bob:
            await bob.send("me?")
            bob_id = await bob.recv()
        await eventually(lambda: len(seen) == 1)
        *present, leaver = seen[0]
        assert leaver == bob_id and bob_id not in present and len(present) == 1
        await ann.send("who?")
        assert json.loads(await ann.recv()) == ["ann"]


async def test_churn_goes_out_batched() -> None:
    """30 connections joining at once reach a watcher as a few diffs, not 30 frames."""
    async with served() as (url, _, _), MultiplexClient.connect(f"{url}/lobby") as watcher:
        await watcher.subscribe("/rooms/churn", presence=True)
        assert (await watcher.recv_presence("/rooms/churn"))[0] == "state"
        await watcher.recv_presence("/rooms/churn")  # the watcher's own join
        async with contextlib.AsyncExitStack() as stack:
            for i in range(30):
                await stack.enter_async_context(connect(f"{url}/rooms/churn?user=u{i}"))
            joined: set[str] = set()
            diffs = 0
            while len(joined) < 30:
                _, diff = await watcher.recv_presence("/rooms/churn")
                joined.update(v["user"] for v in diff["joins"].values())
                diffs += 1
            assert diffs <= 10, f"{diffs} diffs for 30 joins"


async def test_join_and_leave_cycles_leave_no_memory_behind() -> None:
    """100,000 join/leave cycles on one topic: the backend's state is back to its size."""
    broker = Broker()
    broker.topic("/rooms/{room}", presence=True)
    async with broker:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(100_000):
                member = Member(f"c{i}", f"user{i % 100}", {"n": i})
                await broker.track("/rooms/a", member)
                await broker.untrack("/rooms/a", member.client_id)
            await broker.wait_presence_sent()
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert await broker.presence("/rooms/a") == []
        assert (await broker.presence_stats("/rooms/a")).clients == 0
        assert after - before < 64 * 1024, f"{after - before} bytes left after 100,000 cycles"


async def test_connections_that_come_and_go_leave_the_broker_as_it_was() -> None:
    """Real sockets, dedicated and multiplexed (one watching presence), join and leave a
    topic with presence 30 times: then no client is named, no member, subscriber or presence
    watcher is left, and the topic's counts are back to zero."""
    app, _ = make_app()
    broker = app.state.wsroute.broker
    async with serve(app) as url, httpx.AsyncClient(base_url=f"http://{url}", trust_env=False) as http:
        for n in range(30):
            topic = f"/rooms/c?user=v{n}"
            async with (
                connect(f"{url}/rooms/c?user=u{n % 3}") as plain,
                MultiplexClient.connect(f"{url}{topic}", presence=True) as watching,
            ):
                await plain.send("me?")
                assert await plain.recv()  # read: the broker names it by its id now
                await watching.send(topic, "me?")
                assert await watching.recv_data(topic)
                assert (await stats(http, "/rooms/c"))["clients"] == 2

        def empty() -> bool:
            return len(broker.clients) == 0 and not broker._topics and not broker._watchers

        await eventually(empty, what="no client, subscriber or watcher left")
        assert await stats(http, "/rooms/c") == {"clients": 0, "users": 0}
        assert await members(http, "/rooms/c") == []


async def test_presence_stats_and_lists_for_10000_members() -> None:
    broker = Broker()
    broker.topic("/rooms/{room}", presence=True)
    async with broker:
        for i in range(10_000):
            await broker.track("/rooms/big", Member(f"c{i}", f"u{i // 2}", None))
        assert len(await broker.presence("/rooms/big")) == 10_000
        assert len(json.loads(await broker.presence_state("/rooms/big"))) == 10_000
        counts = await broker.presence_stats("/rooms/big")
        assert (counts.clients, counts.users) == (10_000, 5_000)
        await asyncio.sleep(0)


async def test_app_code_follows_presence_changes() -> None:
    broker = Broker()
    broker.topic("/rooms/{room}", presence=True)
    async with broker, broker.presence_changes("/rooms/a") as changes:
        await broker.track("/rooms/a", Member("c1", "ann", {"n": 1}))
        await broker.track("/rooms/a", Member("c2", "bob", None))
        await broker.track("/rooms/b", Member("c3", "eve", None))  # another topic
        change = await asyncio.wait_for(anext(changes), 2)
        assert change.topic == "/rooms/a" and change.leaves == []
        assert change.joins == [Member("c1", "ann", {"n": 1}), Member("c2", "bob", None)]
        await broker.untrack("/rooms/a", "c1")
        change = await asyncio.wait_for(anext(changes), 2)
        assert (change.joins, change.leaves) == ([], [Member("c1", "ann", {"n": 1})])
    with pytest.raises(ValueError, match="no presence"):
        async with broker.presence_changes("/lobby"):
            pass


def test_info_that_is_not_json_is_refused_where_it_is_made() -> None:
    """A join returning an `info` JSON cannot carry fails there, with the reason, rather than
    breaking the batched diff of the members announced with it."""
    assert PresenceInfo(user="ann", info={"name": "Ann", "tags": [1, 2]}).info == {
        "name": "Ann",
        "tags": [1, 2],
    }
    with pytest.raises(TypeError, match=r"PresenceInfo\.info must be JSON-serialisable"):
        PresenceInfo(user="ann", info={"since": object()})  # type: ignore[dict-item]


def test_a_batch_keeps_what_must_be_stored() -> None:
    """Within one batch, only a member never stored before may vanish without a trace."""
    ann, ann2 = Member("c1", "ann", {"v": 1}), Member("c1", "ann", {"v": 2})
    fresh = PresenceDiff()
    fresh.join(ann)
    fresh.leave(ann)
    assert not fresh  # joined and left in one batch: nothing to store or announce
    stored = PresenceDiff()  # c1 was stored by an earlier batch
    stored.leave(ann)
    stored.join(ann2)
    stored.leave(ann2)
    assert stored.leaves == {"c1": ann2} and stored.joins == {}
    replaced = PresenceDiff()  # c1 tracked again with new info, then gone
    replaced.join(ann2, replacing=True)
    replaced.leave(ann2)
    assert replaced.leaves == {"c1": ann2}


def test_the_state_frame_lists_every_member_as_json_however_often_it_is_sent() -> None:
    """The state frame's JSON is made from each member's entry, kept after its first use (a
    join storm sends one topic's list to every joiner): any client id, user and info come out
    as JSON would have them, every time, and the kept entry does not make two equal members
    differ."""
    members = [
        Member("AY0.1", "zoë", {"name": 'Zoë "Z" 🦊', "tags": ["a", {"b": None}], "n": 1.5}),
        Member('q"\\/', None, None),
        Member("AY0.3", "bob", "שלום\n"),
    ]
    expected = {m.client_id: {"user": m.user, "info": m.info} for m in members}
    assert json.loads(encode_state(members)) == expected
    assert json.loads(encode_state(members)) == expected  # from the kept entries
    assert json.loads(encode_state(members[1:])) == {k: v for k, v in expected.items() if k != "AY0.1"}
    assert json.loads(encode_state([])) == {}
    assert members[0] == Member("AY0.1", "zoë", members[0].info)
    assert dataclasses.asdict(members[2]) == {"client_id": "AY0.3", "user": "bob", "info": "שלום\n"}
    assert hash(members[2]) == hash(Member("AY0.3", "bob", "שלום\n"))


async def test_a_reader_in_a_join_storm_waits_for_two_writes_at_most() -> None:
    """Each presence read first settles this process's changes. In a storm (joins arriving
    faster than a write takes) a reader must wait for the write in progress and the one that
    takes its change, not for one write per reader queued before it."""
    writes: list[int] = []

    async def update(topic: str, diff: PresenceDiff) -> None:
        writes.append(len(diff.joins))
        await asyncio.sleep(0.005)  # a round trip to Redis

    writer = PresenceWriter(update, batch=60.0)  # no timer flush: the reads flush
    waited: list[int] = []

    async def read() -> None:
        before = len(writes)
        await writer.settle()
        waited.append(len(writes) - before)

    readers = []
    for i in range(40):  # a join and a read every millisecond, for 40 ms
        writer.join("/storm", Member(f"c{i}", None, None))
        readers.append(asyncio.create_task(read()))
        await asyncio.sleep(0.001)
    await asyncio.gather(*readers)
    assert sum(writes) == 40  # every join written
    assert max(waited) <= 2
    await writer.close()


async def test_updates_within_a_batch_announce_only_what_was_stored_before() -> None:
    """A member that joins, updates its info and leaves within one batch was never stored:
    nothing is announced. One stored before that updates and leaves is announced as a leave
    (with its last info); one that updates twice, as one join with the last info."""
    diffs: list[str] = []

    async def update(topic: str, diff: PresenceDiff) -> None:
        diffs.append(diff.encode())

    writer = PresenceWriter(update, batch=60.0)  # no timer flush: settle() flushes
    writer.join("/t", Member("old", "ann", 0))
    await writer.settle()
    writer.join("/t", Member("new", "bob", 0))
    writer.join("/t", Member("new", "bob", 1))
    writer.leave("/t", "new")
    writer.join("/t", Member("old", "ann", 1))
    writer.join("/t", Member("old", "ann", 2))
    await writer.settle()
    writer.join("/t", Member("old", "ann", 3))
    writer.leave("/t", "old")
    await writer.settle()
    assert [json.loads(d) for d in diffs] == [
        {"joins": {"old": {"user": "ann", "info": 0}}, "leaves": {}},
        {"joins": {"old": {"user": "ann", "info": 2}}, "leaves": {}},
        {"joins": {}, "leaves": {"old": {"user": "ann", "info": 3}}},
    ]
    await writer.close()


async def test_a_leave_after_a_failed_join_batch_is_written_and_retries_back_off() -> None:
    """A batch may have been stored even though it failed (the reply timed out): the leave of
    a member whose join it held is written, not dropped as never stored (which would leave a
    ghost member). While the backend keeps failing, new joins do not bring the retries back
    to every batch interval."""
    attempts: list[tuple[list[str], list[str]]] = []
    failing = True

    async def update(topic: str, diff: PresenceDiff) -> None:
        attempts.append((sorted(diff.joins), sorted(diff.leaves)))
        await asyncio.sleep(0.03)  # a slow failure (a hang), longer than the batch interval
        if failing:
            raise BrokerUnavailable("the reply timed out")

    writer = PresenceWriter(update, batch=0.01)
    writer.join("/a", Member("c1", "ann", None))
    await writer.settle()  # fails: the batch comes back
    writer.leave("/a", "c1")
    deadline = asyncio.get_running_loop().time() + 0.3
    for n in range(100):  # joins keep coming during the outage, one per batch interval
        if asyncio.get_running_loop().time() > deadline:
            break
        writer.join("/b", Member(f"b{n}", "bob", None))
        await asyncio.sleep(0.01)
    assert len(attempts) <= 8, f"{len(attempts)} attempts in 0.3 s, backing off from 10 ms"
    failing = False
    await writer.settle()
    assert ["c1"] in [leaves for _, leaves in attempts], attempts
    await writer.close()


async def test_batches_are_neither_lost_by_a_cancelled_reader_nor_by_a_failed_write() -> None:
    stored: dict[str, Member] = {}
    calls: list[str] = []
    gate = asyncio.Event()
    failures = [BrokerUnavailable("Redis is restarting")]

    async def update(topic: str, diff: PresenceDiff) -> None:
        calls.append(topic)
        await gate.wait()
        if failures:
            raise failures.pop()
        for cid in diff.leaves:
            stored.pop(cid, None)
        stored.update(diff.joins)

    writer = PresenceWriter(update, batch=60.0)  # no timer flush in this test: reads flush
    names = ("ann", "bob", "eve", "dan")
    ann, bob, eve, dan = (Member(f"c{i}", name, None) for i, name in enumerate(names, 1))
    writer.join("/a", ann)
    writer.join("/a", dan)
    writer.join("/b", bob)
    reader = asyncio.create_task(writer.settle())
    await eventually(lambda: calls)
    reader.cancel()  # the reader goes away while its batch is being written
    writer.join("/a", eve)
    writer.leave("/a", "c4")  # Dan leaves: newer than the failing batch that holds his join
    gate.set()
    await writer.settle()  # the failed batch came back under the newer changes
    await writer.settle()
    # /a failed: /b was kept without a try of its own (the backend is down), and both were
    # written with the next flush.
    assert calls == ["/a", "/a", "/b"]
    assert stored == {"c1": ann, "c2": bob, "c3": eve}
    await writer.close()
    assert writer.diffs == {} and writer.members == {}


async def test_a_member_keeps_its_info_as_json_not_the_apps_dict() -> None:
    """The join's `info` is kept as the JSON every client receives: a `datetime` is listed as
    its ISO string on the memory backend too (as on Redis), and the app changing its own dict
    after the join changes nothing until `update_presence`, which then announces it (before,
    the dict was kept by reference: the list changed silently and the update announced
    nothing, finding no difference)."""
    import datetime

    kept: dict[str, dict[str, JsonValue]] = {}
    since = datetime.datetime(2026, 12, 7, 18, 0, tzinfo=datetime.UTC)
    ws = WsRouter()
    ws.topic("/rooms/{room}", presence=True)

    @ws.join("/rooms/{room}")
    async def enter(user: str) -> PresenceInfo:
        kept[user] = {"status": "here", "since": since}  # type: ignore[dict-item]
        return PresenceInfo(user=user, info=kept[user])

    @ws.message("/rooms/{room}")
    async def said(data: str, user: str, channel: Channel) -> None:
        kept[user]["status"] = data
        await channel.send(f"updated: {await channel.update_presence(kept[user])}")

    app = FastAPI()
    ws.install(app)
    async with (
        asyncio.timeout(20),
        serve(app) as url,
        MultiplexClient.connect(f"ws://{url}/rooms/w?user=w", presence=True) as watcher,
    ):
        assert (await watcher.recv_presence("/rooms/w?user=w"))[0] == "state"
        await watcher.recv_presence("/rooms/w?user=w")  # the watcher's own join
        async with connect(f"ws://{url}/rooms/w?user=ann") as ann:
            _, joined = await watcher.recv_presence("/rooms/w?user=w")
            here = {"status": "here", "since": "2026-12-07T18:00:00+00:00"}
            assert [m["info"] for m in joined["joins"].values()] == [here]
            kept["ann"]["status"] = "changed behind its back"
            listed = {m.user: m.info for m in await ws.broker.presence("/rooms/w")}
            assert listed["ann"] == here
            await ann.send("away")
            assert await ann.recv() == "updated: True"
            _, diff = await watcher.recv_presence("/rooms/w?user=w")
            assert [m["info"]["status"] for m in diff["joins"].values()] == ["away"]


async def test_members_of_a_stopped_memory_broker_are_not_listed_after_it_starts_again() -> None:
    """A leave that comes after the broker stopped (a shutdown whose graceful timeout ran
    out) finds no writer; the memory backend must not list that member in the next run."""
    broker = Broker()
    broker.topic("/rooms/{room}", presence=True)
    async with asyncio.timeout(10):
        await broker.start()
        await broker.track("/rooms/a", Member("c1", "ann", None))
        await broker.wait_presence_sent()
        assert [m.client_id for m in await broker.presence("/rooms/a")] == ["c1"]
        await broker.stop()
        await broker.untrack("/rooms/a", "c1")  # its leave, after the stop
        await broker.start()
        try:
            assert await broker.presence("/rooms/a") == []
            stats = await broker.presence_stats("/rooms/a")
            assert (stats.clients, stats.users) == (0, 0)
        finally:
            await broker.stop()
