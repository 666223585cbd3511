"""History and recovery on the Redis backend: one order everywhere, the stream's limits, a
new epoch when Redis loses data, and recovery across two uvicorn workers with the client's
TCP connection cut mid-burst (docs/history.md)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Message

from apps.history_app import HISTORY, create_app
from support.processes import HOST, uvicorn_processes
from support.proxy import CuttableProxy
from support.redis_server import client as redis_client
from support.redis_server import private_redis, require_redis
from wsroute import Broker, BrokerUnavailable, PositionLost
from wsroute.broker.redis import RedisBackend
from wsroute.history import HistoryPolicy, StreamPosition
from wsroute.messages import text_event
from wsroute.multiplex.codec import Ok
from wsroute.testing import MultiplexClient, eventually, serve

pytestmark = pytest.mark.anyio

HISTORY_APP = "apps.history_app:app"


@pytest.fixture
def redis_url() -> str:
    return require_redis()


def prefixed(url: str) -> str:
    """`url` with a channel prefix of this test's own (keys and channels both use it)."""
    return f"{url}?channel_prefix=wsroute-test-{uuid.uuid4().hex[:12]}:"


class Recorder:
    """A `deliver` callback keeping what reaches one process, with positions."""

    def __init__(self) -> None:
        self.got: list[tuple[str, StreamPosition | None]] = []

    def __call__(
        self, topic: str, event: Message, exclude: str | None, position: StreamPosition | None
    ) -> None:
        self.got.append((event["text"], position))


async def test_two_processes_publishing_at_once_give_one_order_in_history_and_delivery(
    redis_url: str,
) -> None:
    url = prefixed(redis_url)
    policy = HistoryPolicy(size=1000, ttl=None)
    publishers = [RedisBackend(url), RedisBackend(url)]
    listener, seen = RedisBackend(url), Recorder()
    await listener.start(seen)
    try:
        for backend in publishers:
            await backend.start(lambda *args: None)
        await listener.subscribe("/t")

        async def burst(backend: RedisBackend, tag: str) -> list[StreamPosition]:
            publish = backend.publish_with_history
            return [await publish("/t", text_event(f"{tag}{i}"), None, policy) for i in range(200)]

        a, b = await asyncio.gather(burst(publishers[0], "a"), burst(publishers[1], "b"))
        # Each publisher's own offsets increase; together they are 1..400 with no repeat.
        assert a == sorted(a) and b == sorted(b)
        assert sorted(p.offset for p in a + b) == list(range(1, 401))
        await eventually(lambda: len(seen.got) == 400, timeout=10)
        offsets = [position.offset for _, position in seen.got if position is not None]
        assert offsets == list(range(1, 401)), "delivered in offset order"
        read = await listener.read_history("/t", policy)
        delivered = [text for text, _ in seen.got]
        assert [p.data for p in read.publications] == delivered, "history order = delivery order"
        assert {p.epoch for p in read.publications} == {a[0].epoch}
    finally:
        for backend in [*publishers, listener]:
            await backend.stop()


async def test_history_is_trimmed_by_size_and_age_and_readable_with_nobody_subscribed(redis_url: str) -> None:
    async with Broker(prefixed(redis_url)) as broker:
        broker.topic("/sized/{x}", history=3)
        broker.topic("/aged/{x}", history=10, history_ttl=0.3)
        for i in range(5):
            await broker.broadcast_to("/sized/a", f"s{i}")
            await broker.broadcast_to("/aged/a", f"a{i}")
        assert [p.data for p in await broker.history("/sized/a")] == ["s2", "s3", "s4"]
        assert [p.offset for p in await broker.history("/sized/a", reverse=True, limit=2)] == [5, 4]
        epoch = (await broker.position("/sized/a")).epoch
        with pytest.raises(PositionLost):
            await broker.history("/sized/a", since=(epoch, 1))  # 2 was trimmed
        assert [p.data for p in await broker.history("/sized/a", since=(epoch, 3))] == ["s3", "s4"]
        assert len(await broker.history("/aged/a")) == 5
        await asyncio.sleep(0.45)
        assert await broker.history("/aged/a") == []
        aged = await broker.position("/aged/a")
        assert aged.offset == 5
        # Nothing missed after the last one: still a valid position.
        assert await broker.history("/aged/a", since=tuple(aged)) == []  # type: ignore[arg-type]
        await broker.broadcast_to("/sized/a", b"\x00\xff")
        assert (await broker.history("/sized/a", limit=1, reverse=True))[0].data == b"\x00\xff"


@pytest.mark.parametrize("offset", [10**14, 2**53 - 1])
async def test_a_position_far_ahead_of_the_stream_is_lost_not_an_outage(redis_url: str, offset: int) -> None:
    """The protocol allows offsets up to 2**53 - 1. Lua 5.1 writes numbers of 1e14 and more
    as "1e+14", which XRANGE refused: such a `since` raised BrokerUnavailable (and, over
    the wire, looked like Redis down and logged a warning per SUBSCRIBE). It is lost, as on
    the memory backend."""
    async with Broker(prefixed(redis_url)) as broker:
        broker.topic("/rooms/{x}", history=10)
        await broker.broadcast_to("/rooms/a", "x")
        epoch = (await broker.position("/rooms/a")).epoch
        with pytest.raises(PositionLost):
            await broker.history("/rooms/a", since=(epoch, offset))


async def test_a_restarted_redis_is_a_new_epoch_and_old_positions_are_lost() -> None:
    with private_redis() as server:
        async with Broker(prefixed(server.url)) as broker:
            broker.topic("/t/{x}", history=10)
            first = await broker.broadcast_to("/t/a", "before")
            assert first is not None and first.offset == 1
            server.kill()
            server.start()
            # The publish connection notices the restart on its first use, or its second.
            second = None
            for _ in range(3):
                with contextlib.suppress(BrokerUnavailable):
                    second = await broker.broadcast_to("/t/a", "after")
                    break
            assert second is not None
            assert second.epoch != first.epoch and second.offset == 1
            with pytest.raises(PositionLost, match="no longer holds"):
                await broker.history("/t/a", since=tuple(first))  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def history_workers(redis_url: str) -> AsyncIterator[tuple[int, int, Broker]]:
    """Two workers of the history app on one Redis, and a write-only broker of the same app."""
    url = prefixed(redis_url)
    with uvicorn_processes(HISTORY_APP, {"WSROUTE_TEST_BROKER": url}, count=2) as (port_a, port_b):
        async with create_app(url).state.wsroute.broker as broker:
            yield port_a, port_b, broker


async def test_a_client_cut_off_mid_burst_recovers_every_message_once_in_order_across_workers(
    redis_url: str,
) -> None:
    """Two workers publish 1000 broadcasts over 4 topics while the client's TCP connection
    (to worker A, through a proxy) is cut at a random point; the client reconnects to worker
    B with its positions and ends with every message once, in offset order. 20 times."""
    rng = random.Random(16)
    async with (
        history_workers(redis_url) as (port_a, port_b, broker),
        httpx.AsyncClient(trust_env=False, timeout=30) as http,
    ):
        for round_ in range(20):
            topics = [f"/rooms/r{round_}-{n}" for n in range(4)]
            got: dict[str, list[str]] = {topic: [] for topic in topics}
            cut_after = rng.randrange(0, 400)
            proxy = CuttableProxy(port_a)
            proxied = f"ws://{HOST}:{await proxy.start()}{topics[0]}"
            async with proxy, MultiplexClient.connect(proxied, positions=True) as client:
                    for topic in topics[1:]:
                        await client.subscribe(topic, positions=True)
                    bursts = asyncio.gather(*(
                        http.post(
                            f"http://{HOST}:{port}/burst",
                            params={"topic": topic, "count": 125, "tag": f"w{port}"},
                        )
                        for port in (port_a, port_b)
                        for topic in topics
                    ))  # fmt: skip
                    for _ in range(cut_after):
                        topic, payload = await client.recv_any_data(timeout=10)
                        got[topic].append(str(payload))
                    positions = {topic: client.position(topic) for topic in topics}
                    proxy.cut()
            # Reconnect, to the other worker, with the last position of every topic.
            first = positions[topics[0]]
            async with MultiplexClient.connect(f"ws://{HOST}:{port_b}{topics[0]}", since=first) as client:
                assert client.recovered(topics[0]) is True
                for topic in topics[1:]:
                    since = positions[topic]
                    assert since is not None
                    await client.subscribe(topic, since=since)
                    assert client.recovered(topic) is True, f"round {round_}: {topic}"
                for response in await bursts:
                    response.raise_for_status()
                for topic in topics:
                    while len(got[topic]) < 250:
                        got[topic].append(str(await client.recv_data(topic, timeout=10)))
                with pytest.raises(TimeoutError):
                    await client.recv(timeout=0.2)  # nothing more: no duplicate
            for topic in topics:
                stored = [p.data for p in await broker.history(topic)]
                assert got[topic] == stored, f"round {round_} (cut after {cut_after}): {topic}"
                assert len(set(stored)) == 250
                for port in (port_a, port_b):
                    own = [m for m in got[topic] if m.startswith(f"w{port}:")]
                    assert own == [f"w{port}:{i}" for i in range(1, 126)], f"round {round_}: order"


async def test_a_publisher_without_the_topic_configuration_is_warned_about(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Its broadcasts still reach subscribers, but are not stored: the receiving process says so."""
    url = prefixed(redis_url)
    async with Broker(url) as configured, Broker(url) as bare:
        configured.topic("/rooms/{room}", history=10)

        class Subscriber:
            subscriber_id = "s"

            def __init__(self) -> None:
                self.got: list[str] = []

            def deliver(self, event: Message) -> None:
                self.got.append(event["text"])

            def deliver_at(self, event: Message, position: StreamPosition) -> None:
                self.got.append(event["text"])

        subscriber = Subscriber()
        await configured.add_subscriber("/rooms/a", subscriber)
        with caplog.at_level("WARNING", logger="wsroute"):
            await bare.broadcast_to("/rooms/a", "unstored")
            await bare.broadcast_to("/rooms/a", "unstored again")
            await eventually(lambda: len(subscriber.got) == 2, timeout=5)
        warnings = [r.getMessage() for r in caplog.records if "published without history" in r.getMessage()]
        assert len(warnings) == 1 and "'/rooms/{room}'" in warnings[0]
        assert await configured.history("/rooms/a") == []


async def test_a_client_resubscribing_after_a_redis_restart_is_told_recovered_false() -> None:
    """Redis lost everything (restarted without persistence): the stream has a new epoch, and
    a client's old position cannot be served. It still subscribes, with recovered=false and
    nothing replayed."""
    with private_redis() as server:
        app = create_app(prefixed(server.url))
        async with serve(app) as url:
            async with MultiplexClient.connect(f"ws://{url}/rooms/a", positions=True) as client:
                await client.send("/rooms/a", "before")
                assert await client.recv_data("/rooms/a") == "before"
                last = client.position("/rooms/a")
            assert last is not None and last.offset == 1
            server.kill()
            server.start()
            async with MultiplexClient.connect(f"ws://{url}/rooms/b", positions=True) as other:
                # The server's Redis connections notice the restart and come back.
                async def published() -> bool:
                    with contextlib.suppress(TimeoutError):
                        await other.send("/rooms/b", "ping")
                        return await other.recv_data("/rooms/b", timeout=0.5) == "ping"
                    return False

                for _ in range(40):
                    if await published():
                        break
                async with MultiplexClient.connect(f"ws://{url}/rooms/a", since=last) as client:
                    assert client.recovered("/rooms/a") is False
                    position = client.position("/rooms/a")
                    assert position is not None and position.epoch != last.epoch and position.offset == 0
                    await client.send("/rooms/a", "after")
                    assert await client.recv_data("/rooms/a") == "after"  # nothing replayed before it


async def test_a_client_recovering_while_the_subscription_is_down_is_told_recovered_false(
    redis_url: str,
) -> None:
    """The worker's pub/sub connection to Redis dropped (a network blip, a proxy's idle
    timeout) and waits out its backoff. A client recovering then cannot be promised every
    publication after its position: those published before the subscription is back never
    reach this worker. It is told recovered=false, where it was told true."""
    url = prefixed(redis_url)
    backend = RedisBackend(url, reconnect_min=5.0, reconnect_max=5.0)
    app = create_app(backend)
    publisher = Broker(url)
    publisher.topic("/rooms/{room}", history=HISTORY)
    async with asyncio.timeout(30), publisher, serve(app) as base:
        async with MultiplexClient.connect(f"ws://{base}/rooms/a", positions=True) as client:
            await publisher.broadcast_to("/rooms/a", "one")
            assert await client.recv_data("/rooms/a") == "one"
            last = client.position("/rooms/a")
        await publisher.broadcast_to("/rooms/a", "missed while away")
        with redis_client() as r:
            [listener] = [
                c["id"] for c in r.client_list() if c.get("name") == backend.client_name and "P" in c["flags"]
            ]
            r.client_kill_filter(_id=listener)
        await eventually(lambda: not backend.receiving("/rooms/a"), what="the subscription down")
        async with MultiplexClient.connect(f"ws://{base}/rooms/a", since=last) as client:
            assert client.recovered("/rooms/a") is False
            assert not backend.receiving("/rooms/a")  # still waiting out its backoff


async def test_a_redis_restored_from_an_older_snapshot_is_a_new_epoch(tmp_path: Path) -> None:
    """Redis restarts from a snapshot taken two publications ago (its default persistence): the
    topic's position comes back at offset 3 while a live client has received offset 5. Every
    publication after the restart must reach it, in a new epoch, not reuse offsets 4 and 5
    (which the server dropped as already sent)."""
    with private_redis(persist_dir=str(tmp_path), snapshots=True) as server:
        url = prefixed(server.url)
        app = create_app(url)
        publisher = Broker(url)
        publisher.topic("/rooms/{room}", history=HISTORY)
        async with (
            asyncio.timeout(60),
            publisher,
            serve(app) as base,
            MultiplexClient.connect(f"ws://{base}/rooms/a", positions=True) as client,
        ):
            assert isinstance(await client.subscribe("/rooms/probe"), Ok)
            for n in range(1, 6):
                if n == 4:
                    with redis_client(server.port) as r:
                        r.save()  # the snapshot: offsets 1 to 3
                await publisher.broadcast_to("/rooms/a", f"before-{n}")
                assert await client.recv_data("/rooms/a") == f"before-{n}"
            last = client.position("/rooms/a")
            assert last is not None and last.offset == 5
            server.kill()
            server.start()
            # Until the server's subscription is back (seen on another topic: its offsets are
            # its own), what is published is not delivered live.
            for n in range(100):
                with contextlib.suppress(BrokerUnavailable, TimeoutError):
                    await publisher.broadcast_to("/rooms/probe", f"probe-{n}")
                    if await client.recv_data("/rooms/probe", timeout=0.2) == f"probe-{n}":
                        break
            for n in range(1, 4):
                await publisher.broadcast_to("/rooms/a", f"after-{n}")
            got = [await client.recv_data("/rooms/a", timeout=5) for _ in range(3)]
            assert got == ["after-1", "after-2", "after-3"]
            now = client.position("/rooms/a")
            assert now is not None and now.epoch != last.epoch and now.offset == 3
