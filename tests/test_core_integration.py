"""The core runtime against a real uvicorn server on 127.0.0.1, with the `websockets` client.

Every test here runs on each server protocol: uvicorn's websockets-sansio and wsproto, and
wsroute's fastlane.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.security import APIKeyHeader, APIKeyQuery, OAuth2PasswordBearer
from pydantic import BaseModel, Field
from starlette.exceptions import WebSocketException
from websockets.exceptions import ConnectionClosed, InvalidStatus

from support.clients import connect
from support.running import Running, serving
from wsroute import (
    AppBroker,
    Broker,
    Channel,
    Data,
    Forward,
    Guard,
    HandshakeRequest,
    InvalidMessage,
    Reject,
    WebSocketStatus,
    WsRouter,
)
from wsroute.testing import WS_IMPLEMENTATIONS, ServerThread, eventually


class Chat(BaseModel):
    """A typed message."""

    user: str
    text: str = Field(min_length=1, max_length=20)


@dataclass
class Probe:
    """What the server saw, read by the tests (the server runs in another thread)."""

    leaves: list[tuple[str, int, str]] = field(default_factory=list)
    guard_builds: list[str] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    teardowns: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def left(self, topic: str) -> list[tuple[str, int, str]]:
        return [leave for leave in self.leaves if leave[0] == topic]


def build_app(probe: Probe) -> tuple[FastAPI, WsRouter]:
    ws = WsRouter()

    class User(Guard):
        def __init__(self, name: str) -> None:
            self.name = name

        @classmethod
        async def from_request(cls, request: HandshakeRequest) -> User:
            token = request.query_params.get("token")
            if token is None:
                raise Reject(401, "missing token")
            if token == "banned":
                raise Reject(403, "banned")
            probe.guard_builds.append(token)
            return cls(token)

    @ws.message("/echo")
    async def echo(data: str, channel: Channel) -> None:
        await channel.send(data)

    @ws.message("/bin")
    async def echo_bytes(data: bytes, channel: Channel) -> None:
        await channel.send(data)

    @ws.message("/raw")
    async def raw(message: Data, channel: Channel) -> None:
        await channel.send(message)

    @ws.message("/{_}")
    async def room(data: str, channel: Channel) -> None:
        await channel.broadcast(data)

    @ws.leave("/{_}")
    async def left(status: WebSocketStatus, channel: Channel) -> None:
        probe.leaves.append((channel.topic, status.code, status.reason))

    @ws.join("/secure")
    async def secure_join(user: User, channel: Channel) -> None:
        probe.bodies.append(f"join:{user.name}")
        await channel.send(f"welcome {user.name}")

    @ws.message("/secure")
    async def secure_message(data: str, user: User, channel: Channel) -> None:
        await channel.send(f"{user.name}: {data}")

    # Every kind of parameter a Python signature allows gets its value (the first message of
    # a connection and every later one take different call paths).
    @ws.message("/kinds/middle/{room}")
    async def message_in_the_middle(channel: Channel, data: str, room: str) -> None:
        await channel.send(f"middle {room} {data}")

    @ws.message("/kinds/positional-only/{room}")
    async def positional_only(data: str, room: str, /, channel: Channel) -> None:
        await channel.send(f"positional-only {room} {data}")

    @ws.message("/kinds/keyword-only/{room}")
    async def keyword_only(channel: Channel, *, data: str, room: str) -> None:
        await channel.send(f"keyword-only {room} {data}")

    @ws.message("/kinds/no-message/{room}")
    async def no_message(channel: Channel, *, room: str) -> None:
        await channel.send(f"no-message {room}")

    # With a join handler, no message handler is chosen at the handshake: every message
    # before the first one that is handled takes the general path.
    @ws.join("/kinds/joined/{room}")
    async def joined(room: str) -> None:
        pass

    @ws.message("/kinds/joined/{room}")
    async def joined_positional_only(data: str, room: str, /, channel: Channel) -> None:
        await channel.send(f"joined {room} {data}")

    def passes_by_name(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        """A decorator as many are written: it takes and passes keyword arguments only."""

        @functools.wraps(fn)
        async def wrapper(**kwargs: Any) -> None:
            await fn(**kwargs)

        return wrapper

    @ws.message("/kinds/wrapped/{room}")
    @passes_by_name
    async def wrapped(data: str, room: str, channel: Channel) -> None:
        await channel.send(f"wrapped {room} {data}")

    @ws.message("/model")
    async def model(data: Chat, channel: Channel[Chat]) -> None:
        await channel.send(Chat(user=data.user.upper(), text=data.text))

    @ws.message("/small", max_message_size=16)
    async def small(data: str, channel: Channel) -> None:
        await channel.send(data)

    @ws.message("/boom")
    async def boom(data: str) -> None:
        raise RuntimeError("handler bug")

    @ws.message("/wsexc")
    async def ws_exception(data: str) -> None:
        raise WebSocketException(4001, "custom reason")

    @ws.message("/close")
    async def close(data: str, channel: Channel) -> None:
        await channel.close(4000, "bye")

    @ws.message("/rooms/{room}")
    async def named_room(data: str, room: str, channel: Channel, shout: bool = False) -> None:
        await channel.broadcast(f"{room}|{data.upper() if shout else data}")

    oauth2 = OAuth2PasswordBearer(tokenUrl="/token")
    header_key = APIKeyHeader(name="x-api-key")
    query_key = APIKeyQuery(name="api_key")

    async def current_user(token: Annotated[str, Depends(oauth2)]) -> str:
        if token != "good":
            raise HTTPException(401, "bad token", headers={"WWW-Authenticate": "Bearer"})
        return "alice"

    @ws.message("/oauth")
    async def oauth(data: str, user: Annotated[str, Depends(current_user)], channel: Channel) -> None:
        await channel.send(f"{user}:{data}")

    @ws.message("/apikey-header")
    async def api_header(data: str, key: Annotated[str, Depends(header_key)], channel: Channel) -> None:
        await channel.send(f"header:{key}")

    @ws.message("/apikey-query")
    async def api_query(data: str, key: Annotated[str, Depends(query_key)], channel: Channel) -> None:
        await channel.send(f"query:{key}")

    async def db_session() -> AsyncIterator[str]:
        probe.teardowns.append("open")
        yield "session"
        probe.teardowns.append("close")

    @ws.message("/db")
    async def db(data: str, session: Annotated[str, Depends(db_session)], channel: Channel) -> None:
        await channel.send(f"{session}:{len(probe.teardowns)}")

    @ws.message("/typed-params/{item_id:int}")
    async def typed_params(
        data: str,
        item_id: int,
        channel: Channel,
        limit: Annotated[int, Query(ge=1)] = 10,
    ) -> None:
        await channel.send(f"{item_id * 2}:{limit}")

    app = FastAPI()

    @app.post("/announce/{room}")
    async def announce(room: str, text: str, broker: AppBroker) -> dict[str, str]:
        await broker.broadcast_to(f"/rooms/{room}", f"{room}|{text}")
        return {"sent": text}

    ws.install(app)

    @app.get("/rooms/special")  # added after install: HTTP must still win over the 426 fallback
    async def special() -> dict[str, str]:
        return {"http": "wins"}

    return app, ws


@pytest.fixture(scope="module", params=WS_IMPLEMENTATIONS)
def running(request: pytest.FixtureRequest) -> Iterator[Running]:
    probe = Probe()
    with serving(*build_app(probe), probe, request.param) as served:
        yield served


async def test_echo(running: Running) -> None:
    async with connect(f"ws://{running.host}/echo") as client:
        for text in ("hello", "", "ünïcødé ·"):
            await client.send(text)
            assert await client.recv() == text


async def test_binary_and_raw_data_keep_their_kind(running: Running) -> None:
    async with connect(f"ws://{running.host}/bin") as client:
        await client.send(b"\x00\x01")
        assert await client.recv() == b"\x00\x01"
    async with connect(f"ws://{running.host}/raw") as client:
        await client.send("text")
        assert await client.recv() == "text"
        await client.send(b"bin")
        assert await client.recv() == b"bin"


async def test_broadcast_reaches_room_and_rooms_are_isolated(running: Running) -> None:
    url = running.host
    async with (
        connect(f"ws://{url}/lobby") as a,
        connect(f"ws://{url}/lobby") as b,
        connect(f"ws://{url}/global") as other,
    ):
        await a.send("hi all")
        assert await a.recv() == "hi all"  # the sender is a subscriber too
        assert await b.recv() == "hi all"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(other.recv(), 0.3)


async def test_path_and_query_parameters(running: Running) -> None:
    url = running.host
    async with (
        connect(f"ws://{url}/rooms/red?shout=true") as red,
        connect(f"ws://{url}/rooms/blue") as blue,
    ):
        await red.send("hey")
        assert await red.recv() == "red|HEY"
        await blue.send("hey")
        assert await blue.recv() == "blue|hey"
    async with connect(f"ws://{url}/typed-params/21?limit=3") as client:
        await client.send("go")
        assert await client.recv() == "42:3"


async def test_parameters_of_every_kind_get_their_values(running: Running) -> None:
    kinds = ("middle", "positional-only", "keyword-only", "no-message", "joined", "wrapped")
    for kind in kinds:
        async with connect(f"ws://{running.host}/kinds/{kind}/red") as client:
            for text in ("one", "two", "three"):
                await client.send(text)
                expected = f"{kind} red" if kind == "no-message" else f"{kind} red {text}"
                assert await client.recv() == expected


async def test_invalid_query_parameter_is_refused_at_handshake(running: Running) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"ws://{running.host}/typed-params/1?limit=0"):
            pass
    assert info.value.response.status_code == 422
    assert b"limit" in info.value.response.body


async def test_broker_from_http_route(running: Running) -> None:
    async with connect(f"ws://{running.host}/rooms/news") as client:
        async with httpx.AsyncClient(trust_env=False) as http:
            response = await http.post(f"http://{running.host}/announce/news", params={"text": "extra"})
        assert response.status_code == 200
        assert await asyncio.wait_for(client.recv(), 5) == "news|extra"


async def test_guard_rejects_with_real_status_and_no_body_runs(running: Running) -> None:
    before = list(running.probe.bodies)
    for query, code, detail in (("", 401, b"missing token"), ("?token=banned", 403, b"banned")):
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"ws://{running.host}/secure{query}"):
                pass
        assert info.value.response.status_code == code
        assert detail in info.value.response.body
        assert info.value.response.headers["content-type"] == "application/json"
    assert running.probe.bodies == before


async def test_guard_is_built_once_per_connection(running: Running) -> None:
    async with connect(f"ws://{running.host}/secure?token=carol") as client:
        assert await client.recv() == "welcome carol"
        for i in range(5):
            await client.send(str(i))
            assert await client.recv() == f"carol: {i}"
    await eventually(lambda: ("/secure", 1000, "") in running.probe.leaves, what="leave")
    # join, five messages and leave shared one guard instance.
    assert running.probe.guard_builds.count("carol") == 1


async def test_leave_status_client_close_with_code_and_reason(running: Running) -> None:
    async with connect(f"ws://{running.host}/closer1") as client:
        await client.close(4321, "see you")
    await eventually(lambda: bool(running.probe.left("/closer1")), what="leave")
    assert running.probe.left("/closer1") == [("/closer1", 4321, "see you")]


async def test_leave_status_tcp_drop_is_1006(running: Running) -> None:
    client = await connect(f"ws://{running.host}/dropper")
    client.transport.abort()
    await eventually(lambda: bool(running.probe.left("/dropper")), what="leave")
    assert running.probe.left("/dropper") == [("/dropper", 1006, "")]


async def test_handler_exception_closes_1011_and_leave_sees_it(running: Running) -> None:
    async with connect(f"ws://{running.host}/boom") as client:
        await client.send("x")
        with pytest.raises(ConnectionClosed) as info:
            await client.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    await eventually(lambda: bool(running.probe.left("/boom")), what="leave")
    assert running.probe.left("/boom") == [("/boom", 1011, "Internal Error")]


async def test_websocket_exception_and_server_close_codes(running: Running) -> None:
    for path, code, reason in (("/wsexc", 4001, "custom reason"), ("/close", 4000, "bye")):
        async with connect(f"ws://{running.host}{path}") as client:
            await client.send("x")
            with pytest.raises(ConnectionClosed) as info:
                await client.recv()
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (code, reason)
        await eventually(lambda p=path: bool(running.probe.left(p)), what="leave")
        assert running.probe.left(path) == [(path, code, reason)]


async def test_invalid_payload_1007_wrong_kind_1003_too_big_1009(running: Running) -> None:
    cases: list[tuple[str, Any, int, str]] = [
        ("/model", '{"user": "a", "text": ""}', 1007, "text"),
        ("/model", "not json", 1007, "invalid"),
        ("/echo", b"binary", 1003, "text"),
        ("/bin", "text", 1003, "binary"),
        ("/small", "x" * 17, 1009, "too big"),
    ]
    for path, message, code, words in cases:
        async with connect(f"ws://{running.host}{path}") as client:
            await client.send(message)
            with pytest.raises(ConnectionClosed) as info:
                await client.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == code, (path, message)
        assert words in info.value.rcvd.reason, info.value.rcvd.reason


async def test_typed_model_in_and_out(running: Running) -> None:
    async with connect(f"ws://{running.host}/model") as client:
        await client.send('{"user": "bob", "text": "hi"}')
        assert await client.recv() == '{"user":"BOB","text":"hi"}'


async def test_size_limit_counts_utf8_bytes(running: Running) -> None:
    async with connect(f"ws://{running.host}/small") as client:
        await client.send("é" * 8)  # 8 characters, 16 bytes: at the limit
        assert await client.recv() == "é" * 8
        await client.send("é" * 9)  # 18 bytes
        with pytest.raises(ConnectionClosed) as info:
            await client.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_fastapi_security_dependencies(running: Running) -> None:
    url = running.host
    async with connect(f"ws://{url}/oauth", additional_headers={"Authorization": "Bearer good"}) as c:
        await c.send("x")
        assert await c.recv() == "alice:x"
    for headers, code in (({}, 401), ({"Authorization": "Bearer bad"}, 401)):
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"ws://{url}/oauth", additional_headers=headers):
                pass
        assert info.value.response.status_code == code
    assert info.value.response.headers["www-authenticate"] == "Bearer"
    async with connect(f"ws://{url}/apikey-header", additional_headers={"X-API-Key": "k1"}) as c:
        await c.send("x")
        assert await c.recv() == "header:k1"
    async with connect(f"ws://{url}/apikey-query?api_key=k2") as c:
        await c.send("x")
        assert await c.recv() == "query:k2"
    for path in ("/apikey-header", "/apikey-query"):
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"ws://{url}{path}"):
                pass
        assert info.value.response.status_code == 401


async def test_event_scoped_dependency_runs_and_tears_down_per_message(running: Running) -> None:
    start = len(running.probe.teardowns)
    async with connect(f"ws://{running.host}/db") as client:
        for _ in range(3):
            await client.send("q")
            await client.recv()
    await eventually(lambda: len(running.probe.teardowns) >= start + 6, what="teardowns")
    assert running.probe.teardowns[start:] == ["open", "close"] * 3


async def test_http_get_gets_426_unless_an_http_route_matches(running: Running) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.get(f"http://{running.host}/echo")
        assert response.status_code == 426
        assert response.headers["upgrade"].lower() == "websocket"
        special = await http.get(f"http://{running.host}/rooms/special")
        assert special.status_code == 200 and special.json() == {"http": "wins"}
        missing = await http.get(f"http://{running.host}/no/such/path/here")
        assert missing.status_code == 404


async def test_unknown_path_is_refused_with_404(running: Running) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"ws://{running.host}/no/such/path"):
            pass
    assert info.value.response.status_code == 404


async def test_origin_policy(running: Running) -> None:
    url = running.host
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"ws://{url}/echo", origin="http://evil.example"):  # type: ignore[arg-type]
            pass
    assert info.value.response.status_code == 403
    async with connect(f"ws://{url}/echo", origin=f"http://{url}") as same:  # type: ignore[arg-type]
        await same.send("ok")
        assert await same.recv() == "ok"
    async with connect(f"ws://{url}/echo") as no_origin:
        await no_origin.send("ok")
        assert await no_origin.recv() == "ok"


async def test_broker_counts_drop_back_after_clients_leave(running: Running) -> None:
    broker: Broker = running.router.broker
    async with connect(f"ws://{running.host}/counted") as client:
        await client.send("x")
        await client.recv()
        assert broker.local_topics().get("/counted") == 1
    await eventually(lambda: "/counted" not in broker.local_topics(), what="unsubscribe")


def test_exception_handler_keeps_connection_open() -> None:
    ws = WsRouter()
    seen: list[str] = []

    @ws.message("/chat")
    async def chat(data: Chat, channel: Channel) -> None:
        await channel.send(f"ok {data.text}")

    @ws.exception_handler(InvalidMessage)
    async def invalid(channel: Channel, exc: InvalidMessage) -> None:
        seen.append(exc.reason)
        await channel.send({"error": exc.reason})

    app = FastAPI()
    ws.install(app)

    async def run(url: str) -> None:
        async with connect(f"ws://{url}/chat") as client:
            await client.send('{"user": "a", "text": ""}')
            error = await client.recv()
            assert "text" in error and "error" in error
            await client.send('{"user": "a", "text": "still here"}')
            assert await client.recv() == "ok still here"

    with ServerThread(app) as url:
        asyncio.run(run(url))
    assert len(seen) == 1


def test_ranks_and_forward() -> None:
    ws = WsRouter()

    class Admin(Guard):
        @classmethod
        def from_request(cls, request: HandshakeRequest) -> Admin:
            if request.query_params.get("admin") != "1":
                raise Forward()
            return cls()

    @ws.message("/{name}", rank=5)
    async def anyone(data: str, name: str, channel: Channel) -> None:
        await channel.send(f"user {name}: {data}")

    @ws.message("/{name}", rank=1)
    async def admin(data: str, name: str, admin: Admin, channel: Channel) -> None:
        await channel.send(f"admin {name}: {data}")

    @ws.message("/static")
    async def static(data: str, channel: Channel) -> None:
        await channel.send(f"static: {data}")

    @ws.message("/picky", rank=1)
    async def picky(data: str, channel: Channel) -> None:
        if data != "mine":
            raise Forward()  # from the body: the next handler by rank gets this message
        await channel.send("picky took it")

    @ws.message("/picky", rank=2)
    async def fallback(data: str, channel: Channel) -> None:
        await channel.send(f"fallback: {data}")

    app = FastAPI()
    ws.install(app)

    async def run(url: str) -> None:
        for path, expected in (
            ("/x?admin=1", "admin x: m"),
            ("/x", "user x: m"),
            ("/static", "static: m"),
        ):
            async with connect(f"ws://{url}{path}") as client:
                await client.send("m")
                assert await client.recv() == expected
        async with connect(f"ws://{url}/picky") as client:
            for text, expected in (("mine", "picky took it"), ("other", "fallback: other")):
                await client.send(text)
                assert await client.recv() == expected

    with ServerThread(app) as url:
        asyncio.run(run(url))
