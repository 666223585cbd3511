"""wsroute on other ASGI servers: hypercorn and granian, each a real subprocess.

The rest of the suite runs on uvicorn (websockets-sansio, wsproto, the fastlane). This
module runs a documented subset of it on each other server, with one worker on a free port
of 127.0.0.1, serving `apps.servers_app`:

* the handshake (and the 426 a plain GET of a WebSocket route gets);
* a guard's refusal: the status the client sees (the real status and JSON body through the
  WebSocket Denial Response extension, or 403 where a server lacks it), and the Origin check;
* echo, text and bytes;
* a broadcast reaching two clients;
* rocket-multiplex: two topics on one socket, beside a plain client of one of them;
* `leave`'s status for a client close (1000, and 4100 with a reason), a server close
  (``channel.close(4000, "bye")``) and a TCP reset;
* graceful shutdown: SIGTERM to the server's main process while two plain sockets and a
  multiplexed one with two topics are open; every client gets a close frame, every
  `leave` runs, the server exits.

What each server does differs; `EXPECTED` holds it, and docs/deployment.md's table says the
same. Where a server cannot do what wsroute promises on uvicorn, the case is an xfail
(strict: the day the server does it, the test says so) naming the reason.

A server whose package is missing skips, except under ``CI=true`` (`support.ci`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from support.ci import unavailable
from support.clients import close_seen, connect, recv
from support.raw import RawClient
from support.servers import SERVERS, ServerRun, installed, read_events, server_process
from wsroute.multiplex.codec import Ok
from wsroute.testing import MultiplexClient, eventually

APP = "apps.servers_app:app"


@dataclass(frozen=True)
class Expected:
    """What a server gives, as the tests found it (hypercorn 0.18, granian 2.8)."""

    denial_response: bool
    """The server offers the ``websocket.http.response`` extension: a guard's `Reject`
    reaches the client with its status and JSON body. Without it wsroute closes before
    accepting and the client sees 403 with no body."""
    shutdown_close: int | None
    """The close code clients get at SIGTERM (None: any code, so long as a close frame comes)."""
    shutdown_leave: tuple[int, str] | None
    """What `leave` gets at SIGTERM (None: anything, so long as each runs once)."""


EXPECTED = {
    # hypercorn waits --graceful-timeout for the connection tasks, then cancels them: the
    # cancelled connection sends 1001 "server shutting down" and runs every leave with it
    # (without that close frame, hypercorn would close the socket with 1011).
    "hypercorn": Expected(
        denial_response=True, shutdown_close=1001, shutdown_leave=(1001, "server shutting down")
    ),
    # granian: see GRANIAN_SHUTDOWN (the shutdown test is an xfail there).
    "granian": Expected(denial_response=True, shutdown_close=None, shutdown_leave=None),
}

HYPERCORN_CLIENT_CLOSE = (
    "hypercorn 0.18 reports every close the client starts as websocket.disconnect code 1006 "
    "(ws_stream.py: 1000 only after the app closed first), so leave cannot see the client's "
    "code or reason"
)
GRANIAN_CLOSE_REASON = (
    "granian 2.8 passes the client's close code in websocket.disconnect but not its reason: "
    "leave gets (4100, '')"
)
GRANIAN_SHUTDOWN = (
    "granian 2.8 on SIGTERM drops open WebSockets without a close frame and exits without "
    "waiting for the app: leave handlers run with 1006 or not at all (emmett-framework/granian#796)"
)


def on_servers(xfail: dict[str, str] | None = None) -> pytest.MarkDecorator:
    """Run the test on each server (the `running` fixture's parameter); the servers in
    `xfail` are expected to fail it, for the reason given."""
    xfail = xfail or {}

    def case(server: str) -> Any:
        if server not in xfail:
            return server
        mark = pytest.mark.xfail(raises=AssertionError, strict=True, reason=xfail[server])
        return pytest.param(server, marks=mark)

    return pytest.mark.parametrize("running", [case(server) for server in SERVERS], indirect=True)


@dataclass
class Served:
    """A server serving `apps.servers_app`, and the file its `leave` handler writes to."""

    run: ServerRun
    events: Path

    @property
    def server(self) -> str:
        return self.run.server

    @property
    def url(self) -> str:
        return f"ws://{self.run.host}"

    def leaves(self, who: str) -> list[tuple[str, int, str]]:
        """The leaves of the connections with ``?who=<who>``: (topic, code, reason)."""
        return [(e["topic"], e["code"], e["reason"]) for e in read_events(self.events) if e["who"] == who]


@contextlib.contextmanager
def serve_app(server: str, tmp: Path) -> Iterator[Served]:
    """`server` serving the app, its leaves recorded to a file in `tmp`; skip (fail under CI)
    if the server is not installed."""
    if not installed(server):
        unavailable(f"{server} is not installed: pip install -e '.[test]'")
    events = tmp / "events.jsonl"
    with server_process(server, APP, {"WSROUTE_SERVERS_EVENTS": str(events)}) as run:
        yield Served(run, events)


@pytest.fixture(scope="module")
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server per module and parameter (see `on_servers`), shared by the tests."""
    server = str(request.param)
    with serve_app(server, tmp_path_factory.mktemp(server)) as served:
        yield served


_who = itertools.count()


def who(label: str) -> str:
    """A name no other connection of the module has (the `leave` log is per server)."""
    return f"{label}{next(_who)}"


async def leaves_of(served: Served, name: str) -> list[tuple[str, int, str]]:
    """The leaves of ``?who=<name>`` once one is there (5 s at most); then 0.1 s more, in
    which a second one would show up."""
    await eventually(lambda: bool(served.leaves(name)), timeout=5, what=f"the leave of {name}")
    await asyncio.sleep(0.1)
    return served.leaves(name)


@on_servers()
async def test_handshake_and_the_426_of_a_plain_get(running: Served) -> None:
    async with connect(f"{running.url}/echo") as client:
        assert client.response.status_code == 101
        assert client.subprotocol is None
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        response = await http.get(f"http://{running.run.host}/echo")
    assert response.status_code == 426
    assert response.headers["upgrade"].lower() == "websocket"


@on_servers()
async def test_a_guard_refusal_reaches_the_client_with_its_status(running: Served) -> None:
    expected = EXPECTED[running.server]
    refusals = {"": (401, "missing token"), "?token=banned": (403, "banned")}
    for query, (status, detail) in refusals.items():
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"{running.url}/secure{query}"):
                pass
        response = info.value.response
        if expected.denial_response:
            assert response.status_code == status
            assert response.headers["content-type"] == "application/json"
            assert bytes(response.body) == b'{"detail":"%s"}' % detail.encode()
        else:
            assert response.status_code == 403
    # The Origin check, which compares the Origin with the Host header the server passes on.
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"{running.url}/secure?token=t", origin="http://evil.example"):
            pass
    assert info.value.response.status_code == 403
    origin = f"http://{running.run.host}"
    async with connect(f"{running.url}/secure?token=ann", origin=origin) as client:
        assert await recv(client) == "welcome ann"


@on_servers()
async def test_echo_text_and_bytes(running: Served) -> None:
    async with connect(f"{running.url}/echo") as client:
        for message in ("hello", "é" * 1000, b"\x00\xff", b"x" * 70_000):
            await client.send(message)
            assert await recv(client) == message


@on_servers()
async def test_a_broadcast_reaches_two_clients(running: Served) -> None:
    room = f"{running.url}/rooms/{who('room')}"
    async with connect(f"{room}?who=ann") as ann, connect(f"{room}?who=bob") as bob:
        await ann.send("hi all")
        assert await recv(ann) == "ann: hi all"
        assert await recv(bob) == "ann: hi all"
        await bob.send("hi ann")
        assert await recv(ann) == "bob: hi ann"
        assert await recv(bob) == "bob: hi ann"


@on_servers()
async def test_multiplex_two_topics_on_one_socket(running: Served) -> None:
    name = who("mux")
    room = f"/rooms/{name}?who={name}"
    async with (
        connect(f"{running.url}/rooms/{name}?who=plain") as plain,
        MultiplexClient.connect(f"{running.url}/echo?who={name}") as mux,
    ):
        assert mux.websocket.subprotocol == "rocket-multiplex"
        assert isinstance(await mux.subscribe(room), Ok)
        await mux.send("/echo?who=" + name, "ping")
        await mux.send(room, "to the room")
        assert await mux.recv_data("/echo?who=" + name) == "ping"
        assert await mux.recv_data(room) == f"{name}: to the room"
        assert await recv(plain) == f"{name}: to the room"
        await plain.send("from plain")
        assert await mux.recv_data(room) == "plain: from plain"
        assert isinstance(await mux.unsubscribe(room, 4001, "done"), Ok)
        assert await leaves_of(running, name) == [(f"/rooms/{name}", 4001, "done")]
        await mux.send("/echo?who=" + name, "still here")
        assert await mux.recv_data("/echo?who=" + name) == "still here"


async def client_close_leave(running: Served, code: int, reason: str) -> list[tuple[str, int, str]]:
    """Echo once on ``/echo``, close from the client with `code` and `reason`; the leaves."""
    name = who("client")
    async with connect(f"{running.url}/echo?who={name}") as client:
        await client.send("x")
        assert await recv(client) == "x"
        await client.close(code, reason)
    return await leaves_of(running, name)


@on_servers(xfail={"hypercorn": HYPERCORN_CLIENT_CLOSE})
async def test_leave_gets_1000_when_the_client_closes(running: Served) -> None:
    assert await client_close_leave(running, 1000, "") == [("/echo", 1000, "")]


@on_servers(xfail={"hypercorn": HYPERCORN_CLIENT_CLOSE, "granian": GRANIAN_CLOSE_REASON})
async def test_leave_gets_the_code_and_reason_the_client_closed_with(running: Served) -> None:
    assert await client_close_leave(running, 4100, "done") == [("/echo", 4100, "done")]


@on_servers()
async def test_leave_gets_the_code_of_a_server_close(running: Served) -> None:
    name = who("server")
    async with connect(f"{running.url}/close?who={name}") as client:
        await client.send("x")
        assert await close_seen(client) == (4000, "bye")
    assert await leaves_of(running, name) == [("/close", 4000, "bye")]


@on_servers()
async def test_leave_gets_1006_when_the_network_drops(running: Served) -> None:
    name = who("reset")
    client = RawClient.connect(running.run.port, f"/echo?who={name}")
    assert client.status == 101
    client.reset()  # SO_LINGER 0: a TCP reset, no close frame
    assert await leaves_of(running, name) == [("/echo", 1006, "")]


def shutdown_case(server: str) -> Any:
    if server == "granian":
        mark = pytest.mark.xfail(raises=AssertionError, strict=True, reason=GRANIAN_SHUTDOWN)
        return pytest.param(server, marks=mark)
    return server


@pytest.mark.parametrize("server", [shutdown_case(server) for server in SERVERS])
async def test_sigterm_closes_every_client_and_runs_every_leave(server: str, tmp_path: Path) -> None:
    expected = EXPECTED[server]
    names = [who("shut") for _ in range(4)]
    with serve_app(server, tmp_path) as served:
        url = served.url
        async with (
            connect(f"{url}/stay?who={names[0]}") as first,
            connect(f"{url}/stay?who={names[1]}") as second,
            MultiplexClient.connect(f"{url}/stay?who={names[2]}") as mux,
        ):
            assert isinstance(await mux.subscribe(f"/rooms/r?who={names[3]}"), Ok)
            await first.send("x")
            started = time.monotonic()
            served.run.terminate()
            closes = [await close_seen(client, timeout=10) for client in (first, second, mux.websocket)]
            assert served.run.wait(10) == 0
            took = time.monotonic() - started
        leaves = [[(code, reason) for _, code, reason in served.leaves(name)] for name in names]
    if expected.shutdown_close is not None:
        assert [code for code, _ in closes] == [expected.shutdown_close] * 3
    assert [len(found) for found in leaves] == [1] * 4, leaves
    if expected.shutdown_leave is not None:
        assert leaves == [[expected.shutdown_leave]] * 4
    assert took < 8
