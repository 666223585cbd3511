"""Lifecycle on a real uvicorn: join/leave order, send-only handlers, slow consumers,
rate limits, connection-scoped dependencies, shutdown, plain Starlette."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Annotated

import pytest
from fastapi import Cookie, Depends, FastAPI, Header
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed

from support.clients import connect
from support.raw import handshake_request
from wsroute import Broker, Channel, ChannelClosed, RateLimited, WebSocketStatus, WsRouter
from wsroute.testing import eventually, serve


async def test_joiner_sees_its_own_join_and_leave_runs_once(ws_impl: str) -> None:
    ws = WsRouter()
    events: list[str] = []

    @ws.join("/rooms/{room}")
    async def joined(room: str, channel: Channel, who: str = "anon") -> None:
        events.append(f"join {who}")
        await channel.broadcast(f"{who} joined {room}")

    @ws.message("/rooms/{room}")
    async def said(data: str, channel: Channel) -> None:
        await channel.broadcast(data)

    @ws.leave("/rooms/{room}")
    async def left(room: str, status: WebSocketStatus, broker: Broker, who: str = "anon") -> None:
        events.append(f"leave {who} {status.code}")
        await broker.broadcast_to(f"/rooms/{room}", f"{who} left")

    app = FastAPI()
    ws.install(app)
    async with serve(app, ws=ws_impl) as url:
        async with connect(f"ws://{url}/rooms/a?who=ann") as ann:
            assert await ann.recv() == "ann joined a"  # subscribed before the join body ran
            async with connect(f"ws://{url}/rooms/a?who=bob") as bob:
                assert await bob.recv() == "bob joined a"
                assert await ann.recv() == "bob joined a"
                await bob.send("hello")
                assert await ann.recv() == "hello"
                assert await bob.recv() == "hello"
            assert await ann.recv() == "bob left"
        await eventually(lambda: events.count("leave ann 1000") == 1, what="ann's leave")
        await asyncio.sleep(0.1)
    assert events == ["join ann", "join bob", "leave bob 1000", "leave ann 1000"]


async def test_send_only_join_handler_learns_of_disconnect(ws_impl: str) -> None:
    ws = WsRouter()
    outcome: list[str] = []
    leaves: list[int] = []

    @ws.join("/ticks")
    async def ticks(channel: Channel) -> None:
        try:
            for i in range(10_000):
                await channel.send(str(i))
                await asyncio.sleep(0.01)
            outcome.append("finished")
        except ChannelClosed:
            outcome.append("closed")
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    @ws.leave("/ticks")
    async def gone(status: WebSocketStatus) -> None:
        leaves.append(status.code)

    @ws.join("/hello")
    async def hello(channel: Channel) -> None:
        await channel.send("hello")

    app = FastAPI()
    ws.install(app)
    async with serve(app, ws=ws_impl) as url:
        for round_ in (1, 2):
            async with connect(f"ws://{url}/ticks") as client:
                assert await client.recv() == "0"
                assert await client.recv() == "1"
            await eventually(
                lambda n=round_: len(outcome) == len(leaves) == n,  # type: ignore[misc]
                what="end of join",
            )
        # A message to a path with no message handler is refused, not silently dropped.
        async with connect(f"ws://{url}/hello") as client:
            assert await client.recv() == "hello"
            await client.send("anyone there?")
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(client.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1003
    assert leaves == [1000, 1000]
    assert set(outcome) <= {"closed", "cancelled"} and len(outcome) == 2


def _raw_client_that_never_reads(host: str, port: int, path: str) -> socket.socket:
    """A WebSocket client with a tiny receive buffer that completes the handshake and then
    never reads again, so the server's writes back up."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect((host, port))
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(1)
        assert chunk, "server closed during handshake"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


async def test_slow_consumer_is_evicted_and_never_delays_the_others(ws_impl: str) -> None:
    ws = WsRouter(max_queue=64)
    leaves: list[tuple[str, int, str]] = []
    peak = {"queue": 0}
    count, size, readers, burst = 1000, 8192, 10, 50
    payload = "x" * size
    published = {"next": 0}

    @ws.message("/feed")
    async def feed(data: str, channel: Channel) -> None:
        await channel.broadcast(data)

    @ws.leave("/feed")
    async def gone(status: WebSocketStatus, channel: Channel) -> None:
        leaves.append((channel.request.query_params.get("who", ""), status.code, status.reason))

    @ws.message("/publish")
    async def publish(data: str, broker: Broker, channel: Channel) -> None:
        for _ in range(int(data)):
            n = published["next"]
            published["next"] += 1
            await broker.broadcast_to("/feed", f"{n}:{payload}")
            for subscriber in broker.subscribers("/feed"):
                peak["queue"] = max(peak["queue"], len(subscriber.outbox))  # type: ignore[attr-defined]
        await channel.send("published")

    app = FastAPI()
    ws.install(app)
    broker = ws.broker
    async with serve(app, ws=ws_impl) as url:
        host, port = url.split(":")
        slow = _raw_client_that_never_reads(host, int(port), "/feed?who=slow")
        try:
            clients = [await connect(f"ws://{url}/feed?who=r{i}", max_queue=None) for i in range(readers)]
            await eventually(lambda: broker.local_topics().get("/feed") == readers + 1, what="subscribed")
            received = [0] * readers

            async def read(i: int) -> None:
                while received[i] < count:
                    message = await clients[i].recv()
                    assert message == f"{received[i]}:{payload}"
                    received[i] += 1

            readers_done = asyncio.gather(*(read(i) for i in range(readers)))
            async with connect(f"ws://{url}/publish") as publisher:
                # Bursts of 50 as fast as the server goes; the readers keep up with each
                # burst (all 50 are delivered within the bound) while the slow client,
                # which never reads, falls behind by the whole stream.
                for sent in range(burst, count + 1, burst):
                    await publisher.send(str(burst))
                    assert await asyncio.wait_for(publisher.recv(), 10) == "published"
                    await eventually(lambda s=sent: min(received) >= s, timeout=10, what="burst delivered")
            await asyncio.wait_for(readers_done, 10)
            assert received == [count] * readers  # nothing lost for clients that read
            await eventually(lambda: any(w == "slow" for w, _, _ in leaves), timeout=10, what="eviction")
            assert ("slow", 1008, "slow consumer") in leaves
            assert not any(code == 1008 for who, code, _ in leaves if who != "slow")
            assert peak["queue"] <= 64  # the bound held: memory per client stays bounded
            assert broker.local_topics().get("/feed") == readers
            for client in clients:
                await client.close()
        finally:
            slow.close()


async def test_rate_limit_closes_1008(ws_impl: str) -> None:
    ws = WsRouter(rate_limit=(5, 60.0))

    @ws.message("/limited")
    async def limited(data: str, channel: Channel) -> None:
        await channel.send(data)

    app = FastAPI()
    ws.install(app)
    async with serve(app, ws=ws_impl) as url, connect(f"ws://{url}/limited") as client:
        for i in range(5):
            await client.send(str(i))
            assert await client.recv() == str(i)
        await client.send("one too many")
        with pytest.raises(ConnectionClosed) as info:
            await client.recv()
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (1008, "rate limit exceeded")


async def test_connection_scoped_dependency_runs_once_and_tears_down_at_leave(ws_impl: str) -> None:
    ws = WsRouter()
    log: list[str] = []

    async def account(x_user: Annotated[str, Header()], theme: Annotated[str, Cookie()] = "light") -> str:
        log.append(f"lookup {x_user}")
        return f"{x_user}/{theme}"

    async def subscription() -> AsyncIterator[str]:
        log.append("open")
        yield "sub"
        log.append("close")

    @ws.message("/me")
    async def me(
        data: str,
        user: Annotated[str, Depends(account)],
        sub: Annotated[str, Depends(subscription, scope="request")],
        channel: Channel,
    ) -> None:
        await channel.send(f"{user} {sub} {data}")

    app = FastAPI()
    ws.install(app)
    async with serve(app, ws=ws_impl) as url:
        headers = {"X-User": "zoe", "Cookie": "theme=dark"}
        async with connect(f"ws://{url}/me", additional_headers=headers) as client:
            for i in range(3):
                await client.send(str(i))
                assert await client.recv() == f"zoe/dark sub {i}"
            assert log == ["lookup zoe", "open"]
        await eventually(lambda: "close" in log, what="teardown at leave")
    assert log == ["lookup zoe", "open", "close"]


async def test_send_after_close_raises_channel_closed(ws_impl: str) -> None:
    ws = WsRouter()
    seen: list[str] = []

    @ws.message("/twice")
    async def twice(data: str, channel: Channel) -> None:
        await channel.close(4000, "done")
        try:
            await channel.send("too late")
        except ChannelClosed as exc:
            seen.append(str(exc))

    app = FastAPI()
    ws.install(app)
    async with serve(app, ws=ws_impl) as url, connect(f"ws://{url}/twice") as client:
        await client.send("x")
        with pytest.raises(ConnectionClosed):
            await client.recv()
    assert seen and "closed" in seen[0]


async def test_send_errors_surface_when_awaited_so_gather_still_sends_the_rest(ws_impl: str) -> None:
    """`channel.send` is a coroutine like any other: a closed channel or an unsendable value
    fails when awaited, so gather(return_exceptions=True) reports it and sends the rest."""
    ws = WsRouter()
    channels: dict[str, Channel] = {}
    results: list[object] = []

    @ws.message("/fanout/{name}")
    async def fanout(data: str, name: str, channel: Channel) -> None:
        channels[name] = channel
        if data == "closed":
            await channel.close(4000, "bye")
        elif data == "go":
            sends = [channels[n].send(f"to {n}") for n in sorted(channels)]  # a, then b (closed)
            sends.append(channel.send(object()))  # not sendable
            results.extend(await asyncio.gather(*sends, return_exceptions=True))

    app = FastAPI()
    ws.install(app)
    async with (
        serve(app, ws=ws_impl) as url,
        connect(f"ws://{url}/fanout/a") as a,
        connect(f"ws://{url}/fanout/b") as b,
    ):
        await b.send("closed")
        with pytest.raises(ConnectionClosed):
            await b.recv()
        await a.send("go")
        assert await a.recv() == "to a"
        await eventually(lambda: len(results) == 3, what="the gather")
    assert results[0] is None
    assert isinstance(results[1], ChannelClosed)
    assert isinstance(results[2], TypeError)


async def test_server_shutdown_runs_leave_for_every_connection(ws_impl: str) -> None:
    ws = WsRouter()
    leaves: list[int] = []

    @ws.message("/stay")
    async def stay(data: str) -> None:
        pass

    @ws.leave("/stay")
    async def gone(status: WebSocketStatus) -> None:
        leaves.append(status.code)

    app = FastAPI()
    ws.install(app)
    clients = []
    async with serve(app, ws=ws_impl) as url:
        clients = [await connect(f"ws://{url}/stay") for _ in range(5)]
        await eventually(lambda: ws.broker.local_topics().get("/stay") == 5, what="connected")
    # serve() returned: the server shut down.
    assert sorted(leaves) == [1012] * 5
    assert ws.broker.local_topics() == {}
    for client in clients:
        with pytest.raises(ConnectionClosed) as info:
            await client.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1012


async def test_plain_starlette_app(ws_impl: str) -> None:
    ws = WsRouter()

    @ws.message("/echo")
    async def echo(data: str, channel: Channel) -> None:
        await channel.send(data)

    app = Starlette()
    ws.install(app)
    async with serve(app, ws=ws_impl) as url, connect(f"ws://{url}/echo") as client:
        await client.send("starlette")
        assert await client.recv() == "starlette"


async def test_rate_limit_goes_through_the_exception_handlers() -> None:
    ws = WsRouter(rate_limit=(2, 60.0))

    @ws.message("/limited")
    async def limited(data: str, channel: Channel) -> None:
        await channel.send(data)

    @ws.exception_handler(RateLimited)
    async def slow_down(channel: Channel, exc: RateLimited) -> None:
        await channel.send(f"slow down: {exc.reason}")

    app = FastAPI()
    ws.install(app)
    async with serve(app) as url, connect(f"ws://{url}/limited") as client:
        for text in ("a", "b"):
            await client.send(text)
            assert await client.recv() == text
        await client.send("c")  # over the limit: dropped, the handler answers
        assert await client.recv() == "slow down: rate limit exceeded"


async def test_close_codes_a_server_may_not_send_are_refused_at_the_call() -> None:
    ws = WsRouter()
    errors: list[str] = []

    @ws.message("/bad-close")
    async def bad_close(data: str, channel: Channel) -> None:
        try:
            await channel.close(1006, "reserved")
        except ValueError as exc:
            errors.append(str(exc))
            await channel.send("still open")

    app = FastAPI()
    ws.install(app)
    async with serve(app) as url, connect(f"ws://{url}/bad-close") as client:
        await client.send("x")
        assert await client.recv() == "still open"
    assert errors and "1006" in errors[0]


@pytest.mark.parametrize("multiplexed", [False, True], ids=["dedicated", "multiplexed"])
async def test_a_client_gone_before_the_accept_leaves_nothing_open(ws_impl: str, multiplexed: bool) -> None:
    """The client hangs up while a connection-scoped dependency of the handshake is still
    opening (a slow database): once it has opened, the accept finds the client gone. Its
    teardown runs, its leave runs once (1006), and the broker forgets its client id."""
    ws = WsRouter()
    log: list[str] = []
    opened = asyncio.Event()

    async def resource(channel: Channel) -> AsyncIterator[str]:
        log.append(f"opened for {channel.client_id}")
        opened.set()
        await asyncio.sleep(0.5)
        try:
            yield "db"
        finally:
            log.append("torn down")

    @ws.message("/rooms/{room}")
    async def said(data: str, db: Annotated[str, Depends(resource, scope="request")]) -> None: ...

    @ws.leave("/rooms/{room}")
    async def left(status: WebSocketStatus) -> None:
        log.append(f"leave {status.code}")

    app = FastAPI()
    ws.install(app)
    headers = {"Sec-WebSocket-Protocol": "rocket-multiplex"} if multiplexed else {}
    async with serve(app, ws=ws_impl) as url:
        port = int(url.rsplit(":", 1)[1])
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(handshake_request("/rooms/a", port, headers))
        await asyncio.wait_for(opened.wait(), 5)
        writer.close()  # gone while the dependency opens
        await writer.wait_closed()
        await eventually(lambda: "torn down" in log, timeout=5, what="the teardown")
        await eventually(lambda: not ws.broker.clients, timeout=5, what="the client id let go")
        await asyncio.sleep(0.2)
        assert log[1:] == ["leave 1006", "torn down"], log
