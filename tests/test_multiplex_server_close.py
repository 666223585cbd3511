"""Server-side closes and subscribes of one topic on a multiplexed socket, racing what that
topic is doing: its handler still running, its client's own UNSUBSCRIBE, a client that
stopped reading. Each behaves as on a dedicated socket, on a real uvicorn server."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from support.raw import OP_TEXT, RawClient, client_frame
from support.redis_server import require_redis
from wsroute import AppBroker, Broker, Channel, WebSocketStatus, WsRouter
from wsroute.multiplex.codec import SEP, DataFrame, Ok, ServerUnsubscribe
from wsroute.testing import MultiplexClient, connect, eventually, serve

pytestmark = pytest.mark.anyio


class Db:
    """A connection-scoped resource: open until its dependency's teardown."""

    def __init__(self) -> None:
        self.open = True


def make_app() -> tuple[FastAPI, list[str], list[str]]:
    ws = WsRouter()
    log: list[str] = []
    ids: list[str] = []

    async def database() -> AsyncIterator[Db]:
        db = Db()
        yield db
        db.open = False
        log.append("torn down")

    @ws.message("/work/{room}")
    async def work(data: str, channel: Channel, db: Annotated[Db, Depends(database, scope="request")]) -> None:  # noqa: E501
        ids.append(channel.client_id)
        if data == "close then raise":
            await channel.close(4000, "bye")
            log.append(f"after close: db open {db.open}")
            raise RuntimeError("failed after its close")
        await asyncio.sleep(0.5)  # a slow query
        log.append(f"handler done: db open {db.open}")

    @ws.leave("/work/{room}")
    async def work_left(status: WebSocketStatus) -> None:
        log.append(f"leave {status.code}")

    @ws.exception_handler(RuntimeError)
    async def failed(channel: Channel, exc: RuntimeError) -> None:
        log.append(f"exception handler: {exc}")

    @ws.message("/rooms/{room}")
    async def said(data: str, channel: Channel) -> None:
        if data == "me?":
            await channel.send(channel.client_id)
        elif data == "big":
            await channel.send("x" * (8 * 1024 * 1024))  # fills the client's TCP window
            ids.append(channel.client_id)
        else:
            await channel.send(f"{channel.topic}: {data}")

    @ws.leave("/rooms/{room}")
    async def left(channel: Channel, status: WebSocketStatus) -> None:
        if channel.topic == "/rooms/slow":
            await asyncio.sleep(0.5)  # writing to a database
        log.append(f"leave {channel.topic} {status.code}")

    app = FastAPI()

    @app.post("/unsubscribe")
    async def unsubscribe(broker: AppBroker, topic: str, client_id: str, code: int) -> int:
        return await broker.unsubscribe(topic, client_id=client_id, code=code, reason="moved")

    @app.post("/subscribe")
    async def subscribe(broker: AppBroker, client_id: str, topic: str) -> Any:
        return await broker.subscribe(client_id, topic)

    ws.install(app)
    return app, log, ids


@contextlib.asynccontextmanager
async def served() -> AsyncIterator[tuple[str, httpx.AsyncClient, list[str], list[str]]]:
    app, log, ids = make_app()
    async with (
        asyncio.timeout(60),
        serve(app) as url,
        httpx.AsyncClient(base_url=f"http://{url}", trust_env=False, timeout=20) as http,
    ):
        yield url, http, log, ids


@pytest.mark.parametrize("multiplexed", [False, True], ids=["dedicated", "multiplexed"])
async def test_a_topic_closed_while_its_handler_runs_leaves_after_the_handler(multiplexed: bool) -> None:
    """``Broker.unsubscribe`` while the topic's handler is in a slow query: the handler ends
    with its database still open, then the leave runs, then the teardown."""
    async with served() as (url, http, log, ids):
        client = MultiplexClient.connect(f"{url}/work/a") if multiplexed else connect(f"{url}/work/a")
        async with client as c:
            await (c.send("/work/a", "work") if multiplexed else c.send("work"))  # type: ignore[call-arg, arg-type]
            await eventually(lambda: bool(ids), what="the handler")
            response = await http.post(
                "/unsubscribe", params={"topic": "/work/a", "client_id": ids[0], "code": 4010}
            )
            assert response.json() == 1
            await eventually(lambda: "torn down" in log, timeout=5, what="the teardown")
    assert log == ["handler done: db open True", "leave 4010", "torn down"]


@pytest.mark.parametrize("multiplexed", [False, True], ids=["dedicated", "multiplexed"])
async def test_a_handler_that_closes_its_topic_then_fails_gets_its_handler(multiplexed: bool) -> None:
    async with served() as (url, _http, log, _ids):
        if multiplexed:
            async with MultiplexClient.connect(f"{url}/rooms/a") as mux:
                assert isinstance(await mux.subscribe("/work/b"), Ok)
                await mux.send("/work/b", "close then raise")
                assert await mux.recv() == ServerUnsubscribe("/work/b", 4000, "bye")
                await eventually(lambda: "torn down" in log, timeout=5, what="the teardown")
                await mux.send("/rooms/a", "still")  # the socket and its other topic live on
                assert await mux.recv_data("/rooms/a") == "/rooms/a: still"
        else:
            async with connect(f"{url}/work/b") as client:
                await client.send("close then raise")
                await client.expect_close(4000)
                await eventually(lambda: "torn down" in log, timeout=5, what="the teardown")
    assert [line for line in log if "/rooms/" not in line] == [
        "after close: db open True",
        "exception handler: failed after its close",
        "leave 4000",
        "torn down",
    ]


async def test_a_server_subscribe_during_the_clients_unsubscribe_comes_after_its_ok() -> None:
    """The client UNSUBSCRIBEs a topic whose leave takes 0.5 s, and meanwhile the server
    subscribes it again: the client hears ``OK UNSUBSCRIBE`` and then ``OK SUBSCRIBE``, and
    the topic is subscribed on both sides."""
    async with served() as (url, http, log, _ids), MultiplexClient.connect(f"{url}/rooms/a") as mux:
        await mux.send("/rooms/a", "me?")
        client_id = await mux.recv_data("/rooms/a")
        assert isinstance(await mux.subscribe("/rooms/slow"), Ok)
        await mux.send_raw(f"{SEP}UNSUBSCRIBE{SEP}/rooms/slow")
        await asyncio.sleep(0.1)  # the leave has begun
        response = await http.post("/subscribe", params={"client_id": client_id, "topic": "/rooms/slow"})
        assert response.json() == 1
        frames = [await mux.recv(), await mux.recv()]
        assert frames == [Ok("UNSUBSCRIBE", ("/rooms/slow",)), Ok("SUBSCRIBE", ("/rooms/slow",))]
        await mux.send("/rooms/slow", "hello")
        assert await mux.recv() == DataFrame("/rooms/slow", "/rooms/slow: hello", None)
    assert log[0] == "leave /rooms/slow 1000"


async def test_commands_to_a_client_that_stopped_reading_do_not_wait_for_it() -> None:
    """A multiplexed client whose TCP window is full: ``Broker.subscribe`` and
    ``Broker.unsubscribe`` answer at once, and the topic's leave runs."""
    async with served() as (url, http, log, ids):
        port = int(url.rsplit(":", 1)[1])
        headers = {"Sec-WebSocket-Protocol": "rocket-multiplex"}
        slow = await asyncio.to_thread(RawClient.connect, port, "/rooms/a", headers=headers, rcvbuf=4096)
        try:
            slow.send(client_frame(OP_TEXT, f"/rooms/a{SEP}big".encode()))
            await eventually(lambda: bool(ids), what="the big send")
            await asyncio.sleep(0.3)  # written; the transport pauses for the client
            async with asyncio.timeout(5):
                response = await http.post("/subscribe", params={"client_id": ids[0], "topic": "/rooms/b"})
            assert response.json() == 1
            async with asyncio.timeout(5):
                response = await http.post(
                    "/unsubscribe", params={"topic": "/rooms/a", "client_id": ids[0], "code": 4010}
                )
            assert response.json() == 1
            await eventually(lambda: "leave /rooms/a 4010" in log, timeout=5, what="the leave")
        finally:
            slow.close()


@pytest.mark.parametrize("broker", ["memory", "redis"])
async def test_a_handler_that_closes_its_topic_and_subscribes_it_again_gets_it_at_once(broker: str) -> None:
    """The handler closes its own topic, then ``Broker.subscribe``s the socket to it again. On
    Redis the command runs in a task of its own: it must not wait for the closed topic's
    leave, which waits for this handler (it stalled for the broker's 5 s timeout, then
    answered 0)."""
    url = "memory://"
    if broker == "redis":
        url = f"{require_redis()}?channel_prefix=wsroute-test-{uuid.uuid4().hex}:"
    ws = WsRouter(broker=url)
    answers: list[tuple[int, float]] = []

    @ws.message("/rooms/{room}")
    async def said(data: str, channel: Channel, broker: Broker) -> None:
        if data == "me?":
            await channel.send(channel.client_id)
        elif data.startswith("again "):
            started = time.monotonic()
            await channel.close(4000, "again")
            answer = await broker.subscribe(data.removeprefix("again "), channel.topic)
            answers.append((answer, time.monotonic() - started))

    app = FastAPI()
    ws.install(app)
    async with asyncio.timeout(30), serve(app) as base, MultiplexClient.connect(f"{base}/rooms/x") as mux:
        assert isinstance(await mux.subscribe("/rooms/a"), Ok)
        await mux.send("/rooms/x", "me?")
        client_id = await mux.recv_data("/rooms/x")
        await mux.send("/rooms/a", f"again {client_id}")
        assert await mux.recv() == ServerUnsubscribe("/rooms/a", 4000, "again")
        assert await mux.recv(timeout=2) == Ok("SUBSCRIBE", ("/rooms/a",))
        await eventually(lambda: bool(answers), what="the handler's answer")
        [(answer, took)] = answers
        assert answer == 1 and took < 1.0, answers
