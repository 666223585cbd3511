"""rocket-multiplex against a real uvicorn, spoken by hand with the `websockets` client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from support.clients import connect
from support.running import Running, serving
from wsroute import Channel, Guard, HandshakeRequest, Reject, WebSocketStatus, WsRouter
from wsroute.multiplex.codec import SEP, DataFrame, Err, Invalid, Ok, ServerUnsubscribe
from wsroute.testing import WS_IMPLEMENTATIONS, MultiplexClient, eventually, serve

S = SEP


class Member(Guard):
    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> Member:
        name = request.query_params.get("name")
        if not name:
            raise Reject(401, "who are you?")
        if name == "mallory":
            raise Reject(403, "banned")
        return cls(name)


@dataclass
class Probe:
    joins: list[str] = field(default_factory=list)
    leaves: list[tuple[str, int, str]] = field(default_factory=list)
    caches: list[int] = field(default_factory=list)


def ws_connect_raw(url: str) -> websockets_connect:
    """A raw rocket-multiplex socket: frames exactly as written."""
    return websockets_connect(url, subprotocols=[Subprotocol("rocket-multiplex")], open_timeout=5)


def build(probe: Probe) -> tuple[FastAPI, WsRouter]:
    ws = WsRouter(max_topics=4)

    @ws.join("/rooms/{room}")
    async def joined(room: str, member: Member, channel: Channel) -> None:
        probe.joins.append(f"{member.name}@{room}")
        probe.caches.append(id(channel.request.local_cache("me", lambda: object())))
        await channel.broadcast(f"{member.name} joined")

    @ws.message("/rooms/{room}")
    async def said(data: str, member: Member, channel: Channel) -> None:
        await channel.broadcast(f"{member.name}: {data}")

    @ws.leave("/rooms/{room}")
    async def left(room: str, status: WebSocketStatus, channel: Channel) -> None:
        probe.leaves.append((channel.topic, status.code, status.reason))

    @ws.message("/echo")
    async def echo(data: str | bytes, channel: Channel) -> None:
        await channel.send(data)

    @ws.message("/kick")
    async def kick(data: str, channel: Channel) -> None:
        await channel.close(4000, "kicked")

    @ws.message("/fail")
    async def fail(data: str) -> None:
        raise RuntimeError("bug")

    @ws.join("/badjoin")
    async def bad_join(channel: Channel) -> None:
        raise RuntimeError("join bug")

    app = FastAPI()
    ws.install(app)
    return app, ws


@pytest.fixture(scope="module", params=WS_IMPLEMENTATIONS)
def running(request: pytest.FixtureRequest) -> Iterator[Running]:
    probe = Probe()
    with serving(*build(probe), probe, request.param) as served:
        yield served


MUX = [Subprotocol("rocket-multiplex")]


async def test_subprotocol_token_is_echoed_exactly(running: Running) -> None:
    for token in ("rocket-multiplex", "Rocket-Multiplex"):
        async with connect(f"ws://{running.host}/echo", subprotocols=[Subprotocol(token)]) as ws:
            assert ws.subprotocol == token


async def test_by_hand_subscribe_data_both_ways_and_replies(running: Running) -> None:
    async with connect(f"ws://{running.host}/echo", subprotocols=MUX) as ws:
        await ws.send(f"/echo{S}hi{S}there")  # the payload keeps its separator
        assert await ws.recv() == f"/echo{S}hi{S}there"
        await ws.send(f"/echo{S}".encode() + b"\x00\xff")
        assert await ws.recv() == f"/echo{S}".encode() + b"\x00\xff"
        await ws.send(f"{S}SUBSCRIBE{S}/rooms/a?name=ann{S}")  # trailing separator accepted
        assert await ws.recv() == f"{S}OK{S}SUBSCRIBE{S}/rooms/a?name=ann"
        assert await ws.recv() == f"/rooms/a?name=ann{S}ann joined"
        await ws.send(f"/rooms/a?name=ann{S}hello")
        assert await ws.recv() == f"/rooms/a?name=ann{S}ann: hello"
        await ws.send(f"/nowhere{S}x")
        assert await ws.recv() == f"{S}INVALID{S}Not Subscribed"
        await ws.send("no separator at all")
        assert await ws.recv() == f"{S}INVALID{S}No Control Character"
        await ws.send(f"{S}DANCE{S}/x")
        assert await ws.recv() == f"{S}INVALID{S}Invalid Control Message"
        await ws.send(f"{S}SUBSCRIBE{S}/".encode())
        assert await ws.recv() == f"{S}INVALID{S}Invalid Control Message"
        await ws.send(f"{S}SUBSCRIBE{S}/{'x' * 600}")
        assert await ws.recv() == f"{S}INVALID{S}Control Message Too Long"
        await ws.send(b"\xff\xfe" + S.encode() + b"x")
        assert await ws.recv() == f"{S}INVALID{S}Invalid Utf-8"
        await ws.send(f"{S}SUBSCRIBE{S}/rooms/a?name=ann")
        assert await ws.recv() == f"{S}ERR{S}Already Subscribed{S}SUBSCRIBE{S}/rooms/a?name=ann"
        await ws.send(f"{S}UNSUBSCRIBE{S}/rooms/zzz")
        assert await ws.recv() == f"{S}ERR{S}Not Subscribed{S}UNSUBSCRIBE{S}/rooms/zzz"
        long_topic = "/" + "t" * 100
        await ws.send(f"{S}SUBSCRIBE{S}{long_topic}")
        assert await ws.recv() == f"{S}ERR{S}Invalid Topic{S}SUBSCRIBE{S}{long_topic}"
        await ws.send(f"{S}SUBSCRIBE{S}/rooms/%C2%B7smuggled?name=a")
        assert await ws.recv() == f"{S}ERR{S}Invalid Topic{S}SUBSCRIBE{S}/rooms/%C2%B7smuggled?name=a"
        # A reason no close frame could carry (124 bytes) is refused; the topic stays open.
        await ws.send(f"{S}UNSUBSCRIBE{S}/rooms/a?name=ann{S}4001{S}{'é' * 62}")
        assert await ws.recv() == f"{S}INVALID{S}Invalid Control Message"
        await ws.send(f"/rooms/a?name=ann{S}still here")
        assert await ws.recv() == f"/rooms/a?name=ann{S}ann: still here"
        await ws.send(f"{S}UNSUBSCRIBE{S}/rooms/a?name=ann{S}4001{S}bye{S}now")
        assert await ws.recv() == f"{S}OK{S}UNSUBSCRIBE{S}/rooms/a?name=ann{S}4001{S}bye{S}now"
        await ws.send("/echo\u00b7still open")
        assert await ws.recv() == "/echo\u00b7still open"
    await eventually(lambda: ("/rooms/a", 4001, f"bye{S}now") in running.probe.leaves, what="leave")


async def test_guard_rejection_is_an_err_and_the_socket_stays(running: Running) -> None:
    async with MultiplexClient.connect(f"ws://{running.host}/echo") as mux:
        assert await mux.subscribe("/rooms/b") == Err("401 Unauthorized", "SUBSCRIBE", ("/rooms/b",))
        assert await mux.subscribe("/rooms/b?name=mallory") == Err(
            "403 Forbidden", "SUBSCRIBE", ("/rooms/b?name=mallory",)
        )
        assert await mux.subscribe("/nothing/here/at/all") == Err(
            "404 Not Found", "SUBSCRIBE", ("/nothing/here/at/all",)
        )
        await mux.send("/echo", "alive")
        assert await mux.recv_data("/echo") == "alive"


async def test_a_topic_refused_by_its_guard_is_not_subscribed(running: Running) -> None:
    refused = "/rooms/guarded?name=mallory"
    broker = running.router.broker
    async with (
        MultiplexClient.connect(f"ws://{running.host}/echo") as mux,
        connect(f"ws://{running.host}/rooms/guarded?name=ann") as ann,
    ):
        assert await ann.recv() == "ann joined"
        assert await mux.subscribe(refused) == Err("403 Forbidden", "SUBSCRIBE", (refused,))
        # Only ann counts as a subscriber of the room, on the broker as on the socket.
        assert len(list(broker.subscribers("/rooms/guarded"))) == 1
        await ann.send("secret")
        assert await ann.recv() == "ann: secret"
        # Frames on one socket arrive in order: had the refused topic been subscribed, its
        # copy of ann's broadcast (or a late OK) would come before this echo.
        await mux.send("/echo", "after")
        assert await mux.recv() == DataFrame("/echo", "after", None)
        await mux.send(refused, "let me in")
        assert await mux.recv() == Invalid("Not Subscribed")


async def test_first_topic_rejection_refuses_the_socket(running: Running) -> None:
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as info:
        async with MultiplexClient.connect(f"ws://{running.host}/rooms/c"):
            pass
    assert info.value.response.status_code == 401


async def test_too_many_topics_counts_the_connect_topic(running: Running) -> None:
    async with MultiplexClient.connect(f"ws://{running.host}/echo") as mux:
        for n in range(3):
            assert isinstance(await mux.subscribe(f"/rooms/r{n}?name=x"), Ok)
        assert await mux.subscribe("/rooms/r9?name=x") == Err(
            "Too Many Topics", "SUBSCRIBE", ("/rooms/r9?name=x",)
        )
        assert isinstance(await mux.unsubscribe("/rooms/r0?name=x"), Ok)
        assert isinstance(await mux.subscribe("/rooms/r9?name=x"), Ok)


async def test_naked_and_multiplexed_clients_share_topics(running: Running) -> None:
    url = running.host
    async with (
        connect(f"ws://{url}/rooms/shared?name=naked") as naked,
        MultiplexClient.connect(f"ws://{url}/echo") as mux,
    ):
        assert await naked.recv() == "naked joined"
        assert isinstance(await mux.subscribe("/rooms/shared?name=muxed"), Ok)
        assert await naked.recv() == "muxed joined"
        await naked.send("from naked")
        assert await naked.recv() == "naked: from naked"
        assert await mux.recv_data("/rooms/shared?name=muxed") == "muxed joined"
        assert await mux.recv_data("/rooms/shared?name=muxed") == "naked: from naked"
        await mux.send("/rooms/shared?name=muxed", "from mux")
        assert await naked.recv() == "muxed: from mux"


async def test_each_topic_has_its_own_request_and_local_cache(running: Running) -> None:
    before = len(running.probe.caches)
    async with MultiplexClient.connect(f"ws://{running.host}/rooms/p?name=pat") as mux:
        assert await mux.recv_data("/rooms/p?name=pat") == "pat joined"
        assert isinstance(await mux.subscribe("/rooms/q?name=quinn"), Ok)
        assert await mux.recv_data("/rooms/q?name=quinn") == "quinn joined"
    caches = running.probe.caches[before:]
    assert len(caches) == 2 and caches[0] != caches[1]
    assert {"pat@p", "quinn@q"} <= set(running.probe.joins)


async def test_server_side_topic_close_and_errors_keep_the_socket(running: Running) -> None:
    async with MultiplexClient.connect(f"ws://{running.host}/echo") as mux:
        assert isinstance(await mux.subscribe("/kick"), Ok)
        await mux.send("/kick", "x")
        assert await mux.recv() == ServerUnsubscribe("/kick", 4000, "kicked")
        assert isinstance(await mux.subscribe("/fail"), Ok)
        await mux.send("/fail", "x")
        assert await mux.recv() == ServerUnsubscribe("/fail", 1011, "Internal Error")
        assert isinstance(await mux.subscribe("/badjoin"), Ok)  # OK comes before the join body
        assert await mux.recv() == ServerUnsubscribe("/badjoin", 1011, "Internal Error")
        await mux.send("/kick", "x")
        assert await mux.recv() == Invalid("Not Subscribed")
        await mux.send("/echo", "still here")
        assert await mux.recv() == DataFrame("/echo", "still here", None)


async def test_leave_runs_for_every_topic_when_the_socket_ends(running: Running) -> None:
    before = len(running.probe.leaves)
    async with MultiplexClient.connect(f"ws://{running.host}/rooms/x1?name=a") as mux:
        for room in ("x2", "x3"):
            assert isinstance(await mux.subscribe(f"/rooms/{room}?name=a"), Ok)
        await mux.websocket.close(4100, "done")
    await eventually(lambda: len(running.probe.leaves) >= before + 3, what="three leaves")
    assert sorted(running.probe.leaves[before:]) == [
        ("/rooms/x1", 4100, "done"),
        ("/rooms/x2", 4100, "done"),
        ("/rooms/x3", 4100, "done"),
    ]
    await eventually(
        lambda: not any(t.startswith("/rooms/x") for t in running.router.broker.local_topics()),
        what="unsubscribed",
    )


async def test_multiplex_can_be_switched_off() -> None:
    ws = WsRouter(multiplex=False)

    @ws.message("/echo")
    async def echo(data: str, channel: Channel) -> None:
        await channel.send(data)

    app = FastAPI()
    ws.install(app)
    async with serve(app) as url, connect(f"ws://{url}/echo", subprotocols=MUX) as client:
        assert client.subprotocol is None
        await client.send(f"/echo{S}x")
        assert await asyncio.wait_for(client.recv(), 5) == f"/echo{S}x"


async def test_the_app_serves_the_browser_client(running: Running) -> None:
    import httpx

    async with httpx.AsyncClient(trust_env=False) as http:
        script = await http.get(f"http://{running.host}/wsroute/multiplex.js")
        types = await http.get(f"http://{running.host}/wsroute/multiplex.d.ts")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "export class MultiplexWebSocket" in script.text
    assert types.status_code == 200 and "MultiplexWebSocket" in types.text


# --- topics under a root path, and the connect topic's own rules ------------------------------


def _rooms_app() -> FastAPI:
    ws = WsRouter()

    @ws.message("/rooms/{room}")
    async def said(data: str, room: str, channel: Channel) -> None:
        await channel.send(f"{room}:{data}")

    app = FastAPI()
    ws.install(app)
    return app


async def test_topics_under_a_mount_are_named_by_their_full_path_like_the_connect_topic() -> None:
    """`app.mount("/api", sub)`: the client connects to /api/rooms/a, so that is the first
    topic's name; a SUBSCRIBE names its topic the same way, /api/rooms/b (before: 404)."""
    parent = FastAPI()
    parent.mount("/api", _rooms_app())
    async with serve(parent) as url, MultiplexClient.connect(f"ws://{url}/api/rooms/a") as mux:
        await mux.send("/api/rooms/a", "hi")
        assert await mux.recv_data("/api/rooms/a") == "a:hi"
        assert await mux.subscribe("/api/rooms/b") == Ok("SUBSCRIBE", ("/api/rooms/b",))
        await mux.send("/api/rooms/b", "yo")
        assert await mux.recv_data("/api/rooms/b") == "b:yo"


async def test_topics_under_uvicorns_root_path_are_named_as_the_client_sees_them() -> None:
    """`uvicorn --root-path /api` behind a proxy that strips /api: the browser's URLs, and
    so its topic names, carry /api (here the proxy is left out: the server sees /rooms/a)."""
    async with (
        serve(_rooms_app(), root_path="/api") as url,
        ws_connect_raw(f"ws://{url}/rooms/a") as socket,
    ):
        await socket.send(f"/api/rooms/a{SEP}hi")
        assert await socket.recv() == f"/api/rooms/a{SEP}a:hi"
        await socket.send(f"{SEP}SUBSCRIBE{SEP}/api/rooms/b")
        assert await socket.recv() == f"{SEP}OK{SEP}SUBSCRIBE{SEP}/api/rooms/b"


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/rooms/" + "b" * 100, "over the 100-byte limit"),  # no frame could name it
        ("/rooms/x%C2%B7y", "decodes to one containing"),  # a separator in a path parameter
    ],
)
async def test_a_connect_topic_a_subscribe_could_not_name_is_refused_with_400(path: str, why: str) -> None:
    async with serve(_rooms_app()) as url:
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect_raw(f"ws://{url}{path}"):
                pass
        assert refused.value.response.status_code == 400
        assert why in refused.value.response.body.decode()
        async with MultiplexClient.connect(f"ws://{url}/rooms/a") as mux:  # as a SUBSCRIBE is
            refusal = await mux.subscribe(path)
            assert isinstance(refusal, Err | Invalid), refusal
