"""History and recovery on the memory backend: the stream, `Broker.history`, and the
multiplex extension over a real uvicorn server (docs/history.md, docs/protocol.md).

The Redis backend's own history tests are in test_history_redis.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from wsroute import AppBroker, Broker, BrokerBackend, Channel, PositionLost, RegistrationError, WsRouter
from wsroute.broker import MemoryBackend
from wsroute.history import HistoryPolicy, StreamPosition
from wsroute.messages import text_event
from wsroute.multiplex.codec import DataFrame, Invalid, Ok, encode_subscribe
from wsroute.testing import MultiplexClient, connect, serve

pytestmark = pytest.mark.anyio


def make_app(broker: str | BrokerBackend | Broker = "memory://", **topic: object) -> tuple[FastAPI, WsRouter]:
    """Rooms with history (``/rooms/{room}``), a topic without (``/plain``), and an HTTP
    route that broadcasts."""
    ws = WsRouter(broker=broker)

    @ws.message("/rooms/{room}")
    async def said(data: str, channel: Channel) -> None:
        if data == "where?":  # the handler reads its topic's position
            await channel.send(repr(await channel.position()))
        else:
            await channel.broadcast(data)

    @ws.message("/plain")
    async def plain(data: str, channel: Channel) -> None:
        if data == "where?":
            await channel.send(repr(await channel.position()))
        else:
            await channel.broadcast(data)

    options: dict[str, object] = {"history": 50, **topic}
    ws.topic("/rooms/{room}", **options)  # type: ignore[arg-type]
    app = FastAPI()

    @app.post("/say")
    async def say(topic: str, text: str, broker: AppBroker, binary: bool = False) -> None:
        await broker.broadcast_to(topic, text.encode() if binary else text)

    @app.get("/position")
    async def position(topic: str, broker: AppBroker) -> tuple[str, int]:
        return tuple(await broker.position(topic))  # type: ignore[return-value]

    ws.install(app)
    return app, ws


# --- the stream and Broker.history ------------------------------------------------------


async def test_broadcasts_get_consecutive_offsets_in_one_epoch_and_are_read_back() -> None:
    _, ws = make_app()
    broker = ws.broker
    async with broker:
        first = await broker.position("/rooms/a")
        assert first.offset == 0
        positions = [await broker.broadcast_to("/rooms/a", f"m{i}") for i in range(5)]
        await broker.broadcast_to("/rooms/a", b"\x00bin")
        assert positions == [StreamPosition(first.epoch, i) for i in range(1, 6)]
        # Another topic has its own stream.
        assert (await broker.broadcast_to("/rooms/b", "x")) == StreamPosition(
            (await broker.position("/rooms/b")).epoch, 1
        )
        kept = await broker.history("/rooms/a")
        assert [(p.offset, p.data) for p in kept] == [(i + 1, f"m{i}") for i in range(5)] + [(6, b"\x00bin")]
        assert {p.epoch for p in kept} == {first.epoch}
        assert [p.data for p in await broker.history("/rooms/a", limit=2)] == ["m0", "m1"]
        assert [p.offset for p in await broker.history("/rooms/a", limit=2, reverse=True)] == [6, 5]
        after = await broker.history("/rooms/a", since=(first.epoch, 3))
        assert [p.offset for p in after] == [4, 5, 6]
        backwards = await broker.history("/rooms/a", since=(first.epoch, 3), reverse=True)
        assert [p.offset for p in backwards] == [6, 5, 4]
        assert await broker.history("/rooms/a", since=(first.epoch, 6)) == []
        with pytest.raises(PositionLost, match="no longer holds"):
            await broker.history("/rooms/a", since=("other-epoch", 3))
        with pytest.raises(PositionLost):
            await broker.history("/rooms/a", since=(first.epoch, 7))  # ahead of the stream
        # A topic without history: a clear error, and broadcast_to returns no position.
        with pytest.raises(ValueError, match="no history"):
            await broker.history("/plain")
        assert await broker.broadcast_to("/plain", "x") is None


async def test_history_is_trimmed_by_size_and_age_even_with_nobody_subscribed() -> None:
    backend = MemoryBackend()
    policy = HistoryPolicy(size=3, ttl=0.3)
    await backend.start(lambda *args: None)
    for i in range(5):
        await backend.publish_with_history("/t", {"type": "websocket.send", "text": str(i)}, None, policy)
    read = await backend.read_history("/t", policy)
    assert [p.data for p in read.publications] == ["2", "3", "4"]
    assert read.oldest == 3 and read.position.offset == 5
    assert not read.holds_all_after(StreamPosition(read.position.epoch, 1))
    assert read.holds_all_after(StreamPosition(read.position.epoch, 2))
    await asyncio.sleep(0.45)
    read = await backend.read_history("/t", policy)
    assert read.publications == [] and read.oldest == 6 and read.position.offset == 5
    # The position outlives the publications: a client that saw offset 5 missed nothing.
    assert read.holds_all_after(StreamPosition(read.position.epoch, 5))


async def test_a_new_memory_backend_is_a_new_epoch() -> None:
    policy = HistoryPolicy(size=3, ttl=None)
    epochs = set()
    for _ in range(2):
        backend = MemoryBackend()
        await backend.start(lambda *args: None)
        position = await backend.publish_with_history("/t", text_event("x"), None, policy)
        epochs.add(position.epoch)
    assert len(epochs) == 2


def test_topic_options_are_checked_when_configured_and_installed() -> None:
    ws = WsRouter()

    @ws.message("/rooms/{room}")
    async def said(data: str) -> None: ...

    with pytest.raises(RegistrationError, match="history must be"):
        ws.topic("/rooms/{room}", history=-1)
    with pytest.raises(RegistrationError, match="history_ttl needs history"):
        ws.topic("/rooms/{room}", history_ttl=5.0)
    for ttl in (0, -1.0, float("inf"), float("nan")):  # inf broke every publish on Redis
        with pytest.raises(RegistrationError, match="history_ttl must be a finite number"):
            ws.topic("/rooms/{room}", history=10, history_ttl=ttl)
    ws.topic("/rooms/{room}", history=10)
    with pytest.raises(RegistrationError, match="configured twice"):
        ws.topic("/rooms/{room}", history=5)
    ws.topic("/room/{room}", history=10)  # a typo: no handler has this path
    with pytest.raises(RegistrationError, match=r"'/room/\{room\}'\) names no route pattern"):
        ws.install(FastAPI())


async def test_a_backend_without_history_refuses_to_start_when_a_topic_asks_for_it() -> None:
    class NoHistory(MemoryBackend):
        supports_history = False

    broker = Broker(NoHistory())
    broker.topic("/rooms/{room}", history=10)
    with pytest.raises(RegistrationError, match=r"NoHistory keeps no history.*'/rooms/\{room\}'"):
        await broker.start()


# --- over the wire ---------------------------------------------------------------------


class Api:
    """The served app's broker, driven over HTTP: the server runs in its own thread and
    event loop, which the broker belongs to."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def broadcast_to(self, topic: str, message: str | bytes) -> None:
        binary = isinstance(message, bytes)
        text = message.decode("latin-1") if isinstance(message, bytes) else message
        response = await self.http.post("/say", params={"topic": topic, "text": text, "binary": binary})
        response.raise_for_status()

    async def position(self, topic: str) -> StreamPosition:
        response = await self.http.get("/position", params={"topic": topic})
        response.raise_for_status()
        epoch, offset = response.json()
        return StreamPosition(epoch, offset)


@contextlib.asynccontextmanager
async def served(**topic: object) -> AsyncIterator[tuple[str, Api]]:
    app, _ = make_app(**topic)
    async with serve(app) as url, httpx.AsyncClient(base_url=f"http://{url}", trust_env=False) as http:
        yield url, Api(http)


async def data(client: MultiplexClient, topic: str, count: int) -> list[str]:
    return [str(await client.recv_data(topic)) for _ in range(count)]


async def test_clients_that_do_not_ask_see_exactly_todays_frames() -> None:
    async with (
        served() as (url, broker),
        connect(f"{url}/rooms/a") as plain,
        MultiplexClient.connect(f"{url}/rooms/a") as multiplexed,
        MultiplexClient.connect(f"{url}/rooms/a", meta=True) as meta,
    ):
        await broker.broadcast_to("/rooms/a", "hello")
        assert await plain.recv() == "hello"
        assert await multiplexed.recv() == DataFrame("/rooms/a", "hello", None)
        assert await meta.recv() == DataFrame("/rooms/a", "·hello", None)


async def test_positions_come_in_the_ok_and_with_every_publication() -> None:
    async with served() as (url, broker), MultiplexClient.connect(f"{url}/plain") as client:
        await broker.broadcast_to("/rooms/a", "before")
        start = await broker.position("/rooms/a")
        reply = await client.subscribe("/rooms/a", positions=True)
        assert reply == Ok("SUBSCRIBE", ("/rooms/a", f"meta,positions,epoch={start.epoch},offset=1"))
        await client.send("/rooms/a", "hi")
        assert await client.recv() == DataFrame("/rooms/a", "offset=2·hi", None)
        await broker.broadcast_to("/rooms/a", b"\x01")
        assert await client.recv() == DataFrame("/rooms/a", None, b"offset=3\xc2\xb7\x01")
        await broker.broadcast_to("/rooms/a", "x")
        assert await client.recv_data("/rooms/a") == "x"
        assert client.position("/rooms/a") == StreamPosition(start.epoch, 4)
        # A topic without history does not grant positions.
        assert await client.subscribe("/plain?x", positions=True) == Ok("SUBSCRIBE", ("/plain?x", "meta"))


async def test_a_client_recovers_what_it_missed_once_in_order_then_goes_live() -> None:
    async with served() as (url, broker):
        async with MultiplexClient.connect(f"{url}/rooms/a", positions=True) as client:
            await broker.broadcast_to("/rooms/a", "seen")
            assert await data(client, "/rooms/a", 1) == ["seen"]
            last = client.position("/rooms/a")
        assert last is not None
        missed = [f"missed {i}" for i in range(7)]
        for text in missed:
            await broker.broadcast_to("/rooms/a", text)
        # The connect topic recovers through the URL; a later topic through SUBSCRIBE.
        async with MultiplexClient.connect(f"{url}/rooms/a", since=last) as client:
            assert client.recovered("/rooms/a") is True
            assert await data(client, "/rooms/a", 7) == missed
            await broker.broadcast_to("/rooms/a", "live")
            assert await data(client, "/rooms/a", 1) == ["live"]
        async with MultiplexClient.connect(f"{url}/plain") as client:
            reply = await client.subscribe("/rooms/a", since=last)
            assert isinstance(reply, Ok) and reply.params[1].endswith(f"offset={last.offset},recovered=true")
            assert await data(client, "/rooms/a", 8) == [*missed, "live"]


async def test_handlers_read_their_topics_position() -> None:
    async with served() as (url, broker):
        await broker.broadcast_to("/rooms/a", "one")
        position = await broker.position("/rooms/a")
        async with connect(f"{url}/rooms/a") as room, connect(f"{url}/plain") as plain:
            await room.send("where?")
            assert await room.recv() == repr(position)
            await plain.send("where?")
            assert await plain.recv() == "None"


async def test_a_client_that_never_received_anything_recovers_from_its_ok() -> None:
    async with served() as (url, broker):
        async with MultiplexClient.connect(f"{url}/rooms/quiet", positions=True) as client:
            start = client.position("/rooms/quiet")
        assert start == StreamPosition(start.epoch if start else "", 0)
        await broker.broadcast_to("/rooms/quiet", "first")
        async with MultiplexClient.connect(f"{url}/rooms/quiet", since=start) as client:
            assert client.recovered("/rooms/quiet") is True
            assert await data(client, "/rooms/quiet", 1) == ["first"]


@pytest.mark.parametrize("reason", ["epoch", "size", "ttl", "cap", "ahead"])
async def test_a_position_that_cannot_be_served_subscribes_with_recovered_false_and_no_replay(
    reason: str,
) -> None:
    async with served(history=5, history_ttl=0.5, recovery_limit=3) as (url, broker):
        await broker.broadcast_to("/rooms/a", "old")
        position = await broker.position("/rooms/a")
        since = {
            "epoch": StreamPosition("another-epoch", 1),
            "size": position,
            "ttl": position,
            "cap": position,
            "ahead": StreamPosition(position.epoch, 99),
        }[reason]
        missed = {"size": 6, "cap": 4}.get(reason, 2)
        for i in range(missed):
            await broker.broadcast_to("/rooms/a", f"m{i}")
        if reason == "ttl":
            await asyncio.sleep(0.7)
        async with MultiplexClient.connect(f"{url}/plain") as client:
            reply = await client.subscribe("/rooms/a", since=since)
            current = await broker.position("/rooms/a")
            assert reply == Ok(
                "SUBSCRIBE",
                ("/rooms/a", f"meta,positions,epoch={current.epoch},offset={current.offset},recovered=false"),
            )
            await broker.broadcast_to("/rooms/a", "next")
            # Nothing replayed: the next frame is the live one.
            assert await client.recv() == DataFrame("/rooms/a", f"offset={current.offset + 1}·next", None)


async def test_recovery_within_the_cap_succeeds_at_the_cap() -> None:
    async with served(recovery_limit=3) as (url, broker):
        position = await broker.position("/rooms/a")
        for i in range(3):
            await broker.broadcast_to("/rooms/a", f"m{i}")
        async with MultiplexClient.connect(f"{url}/rooms/a", since=position) as client:
            assert client.recovered("/rooms/a") is True
            assert await data(client, "/rooms/a", 3) == ["m0", "m1", "m2"]


async def test_a_malformed_since_is_refused_and_the_socket_stays_up() -> None:
    async with served() as (url, _):
        async with MultiplexClient.connect(f"{url}/plain") as client:
            for bad in ({"meta": "", "positions": "", "since": "e:01"}, {"meta": "", "since": "e"}):
                await client.send_raw(encode_subscribe("/rooms/a", bad))
                assert await client.recv() == Invalid("Invalid Control Message")
            assert isinstance(await client.subscribe("/rooms/a", positions=True), Ok)
        with pytest.raises(Exception, match="400"):
            async with MultiplexClient.connect(f"{url}/rooms/a?rocket-multiplex=meta,positions,since=e:x"):
                pass


async def test_no_gap_and_no_duplicate_while_clients_resubscribe_during_a_stream_of_broadcasts() -> None:
    """The subscribe/replay race: a publisher never stops while 100 clients resubscribe
    from positions taken mid-stream; each ends with every publication after its position,
    once, in order."""
    total = 400
    async with served(history=total + 10, recovery_limit=total + 10) as (url, broker):
        epoch = (await broker.position("/rooms/race")).epoch
        published = asyncio.Event()
        count = 0

        async def publish() -> None:
            nonlocal count
            for i in range(1, total + 1):
                await broker.broadcast_to("/rooms/race", str(i))
                count = i
                if i == total:
                    published.set()
                await asyncio.sleep(0.0005 if i % 4 == 0 else 0)

        async def client(n: int) -> list[int]:
            # Start from whatever has been published so far: recovery races the publisher.
            await asyncio.sleep(0.002 * (n % 25))
            since = StreamPosition(epoch, count)
            async with MultiplexClient.connect(f"{url}/rooms/race", since=since) as c:
                assert c.recovered("/rooms/race") is True
                got = [int(await c.recv_data("/rooms/race", timeout=10)) for _ in range(total - since.offset)]
                assert got == list(range(since.offset + 1, total + 1)), f"client {n} from {since.offset}"
                return got

        publisher = asyncio.create_task(publish())
        results = await asyncio.wait_for(asyncio.gather(*(client(n) for n in range(100))), 60)
        await publisher
        assert published.is_set()
        assert sum(map(len, results)) > 0


async def test_a_replay_the_outgoing_queue_cannot_hold_is_refused_not_cut_short() -> None:
    """A replay goes out as one burst; the socket's queue holds `max_queue` messages while
    its client is not reading. A replay bigger than that would be cut by the slow-consumer
    policy (the socket evicted mid-replay, or holes under `drop_oldest` while the OK said
    `recovered=true`): recovery is all or nothing, so it fails as one over
    `recovery_limit` does. One that fits is replayed whole."""
    ws = WsRouter(max_queue=40)
    ws.topic("/rooms/{room}", history=200, recovery_limit=200)

    @ws.message("/rooms/{room}")
    async def said(data: str) -> None: ...

    app = FastAPI()
    ws.install(app)
    broker = ws.broker
    async with asyncio.timeout(20), serve(app) as url:
        async with MultiplexClient.connect(f"ws://{url}/rooms/a", positions=True) as client:
            last = client.position("/rooms/a")
        assert last is not None
        for n in range(30):
            await broker.broadcast_to("/rooms/a", f"m{n}")
        async with MultiplexClient.connect(f"ws://{url}/rooms/a", since=last) as client:
            assert client.recovered("/rooms/a") is True  # 30 + the OK fit in 40
            assert await data(client, "/rooms/a", 30) == [f"m{n}" for n in range(30)]
            last = client.position("/rooms/a")
        assert last is not None
        for n in range(30, 90):
            await broker.broadcast_to("/rooms/a", f"m{n}")
        async with MultiplexClient.connect(f"ws://{url}/rooms/a", since=last) as client:
            assert client.recovered("/rooms/a") is False  # 60 do not: nothing replayed
            position = client.position("/rooms/a")
            assert position is not None and position.offset == 90
            await broker.broadcast_to("/rooms/a", "live")
            assert await data(client, "/rooms/a", 1) == ["live"]
