"""`wsroute.testing` and its pytest plugin, as a user's tests use them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from wsroute import Channel, WebSocketStatus, WsRouter
from wsroute.multiplex.codec import DataFrame, Err, Ok, ServerUnsubscribe
from wsroute.testing import (
    WS_IMPLEMENTATIONS,
    MultiplexClient,
    ServerThread,
    connect,
    eventually,
    multiplex_testclient,
    serve,
)


def make_app(leaves: list[WebSocketStatus] | None = None) -> FastAPI:
    """Echo, rooms, a route that closes with 4001, leaves recorded in `leaves`."""
    ws = WsRouter()

    @ws.message("/echo")
    async def echo(data: str, channel: Channel) -> None:
        await channel.send(data)

    @ws.message("/rooms/{room}")
    async def room(data: str, channel: Channel) -> None:
        await channel.broadcast(data)

    @ws.message("/bye")
    async def bye(data: str, channel: Channel) -> None:
        await channel.close(4001, f"bye {data}")

    @ws.leave("/echo")
    async def left(status: WebSocketStatus) -> None:
        if leaves is not None:
            leaves.append(status)

    app = FastAPI()
    ws.install(app)
    return app


@pytest.mark.parametrize("ws_impl", WS_IMPLEMENTATIONS)
async def test_serve_and_connect_round_trip(ws_impl: str) -> None:
    async with serve(make_app(), ws=ws_impl) as url:
        assert url.startswith("127.0.0.1:")
        async with connect(f"ws://{url}/echo") as client:
            await client.send("hi")
            assert await client.recv() == "hi"
        async with connect(f"{url}/echo") as client, connect("/echo") as relative:
            await relative.send("relative")
            assert await relative.recv() == "relative"
            await client.send(b"\x00")  # the handler takes text: closes with 1003
            await client.expect_close(1003)


async def test_leaving_serve_has_run_every_leave() -> None:
    leaves: list[WebSocketStatus] = []
    async with contextlib.AsyncExitStack() as clients:
        async with serve(make_app(leaves)) as url:
            async with connect(f"ws://{url}/echo") as gone:
                await gone.close(4000, "gone")
            await eventually(lambda: len(leaves) == 1, what="the first client's leave")
            still_open = await clients.enter_async_context(connect(f"ws://{url}/echo"))
            await still_open.send("x")
            assert await still_open.recv() == "x"
        # No `eventually` here: `serve` returned after uvicorn's shutdown ran the leave.
        assert [(status.code, status.reason) for status in leaves] == [(4000, "gone"), (1012, "")]
        assert (await still_open.expect_close(1012))[0] == 1012


async def test_leaving_a_client_with_unread_messages_closes_at_once() -> None:
    """A test that stops reading (50 echoes and broadcasts left unread, more than the
    client library queues) still gets a clean close when its block ends, not a wait of
    `close_timeout` behind the unread messages (10 s for the multiplex client)."""
    leaves: list[WebSocketStatus] = []
    async with serve(make_app(leaves)) as url:
        async with asyncio.timeout(3):
            async with connect(f"ws://{url}/echo") as client:
                for i in range(50):
                    await client.send(f"m{i}")
                await asyncio.sleep(0.3)  # the echoes arrive, and wait unread
        await eventually(lambda: len(leaves) == 1, what="the leave")
        assert leaves[0].code == 1000
        async with asyncio.timeout(3):
            async with MultiplexClient.connect(f"ws://{url}/rooms/a") as mux:
                for i in range(50):
                    await mux.send("/rooms/a", f"m{i}")
                await asyncio.sleep(0.3)
            assert mux.websocket.close_code == 1000


async def test_a_lifespan_startup_error_is_raised_in_the_test() -> None:
    class Broken(Exception):
        pass

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise Broken("no database")
        yield

    app = FastAPI(lifespan=lifespan)
    with pytest.raises(Broken, match="no database"):
        async with serve(app):
            pass


async def test_a_port_in_use_is_a_startup_error() -> None:
    async with serve(make_app()) as url:
        port = int(url.rpartition(":")[2])
        with pytest.raises(RuntimeError, match="did not start"):
            async with serve(make_app(), port=port):
                pass


def test_server_thread_serves_sync_code_until_the_block_ends() -> None:
    server = ServerThread(make_app())
    with pytest.raises(RuntimeError, match="has not started"):
        server.url  # noqa: B018 - the property raises
    with server as url:
        assert url == server.url == f"127.0.0.1:{server.port}"
        # A plain GET to a WebSocket route: 426, from a sync client in a sync test.
        assert httpx.get(f"http://{url}/echo", trust_env=False, timeout=5).status_code == 426
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{url}/echo", trust_env=False, timeout=5)


async def test_server_thread_stop_closes_open_clients_1012_after_their_leave() -> None:
    leaves: list[WebSocketStatus] = []
    server = ServerThread(make_app(leaves))
    with server:
        async with connect("/echo") as client:
            await client.send("x")
            assert await client.recv() == "x"
            await asyncio.to_thread(server.stop)
            # No `eventually`: `stop` returned after uvicorn's shutdown ran the leave.
            assert [(status.code, status.reason) for status in leaves] == [(1012, "")]
            await client.expect_close(1012)
        with pytest.raises(ValueError, match="no `serve` block is running"):
            async with connect("/echo"):
                pass
    # Leaving the block after `stop` stops nothing more.
    assert len(leaves) == 1


async def test_recv_timeout_names_the_url() -> None:
    async with serve(make_app()) as url, connect(f"ws://{url}/rooms/a") as client:
        with pytest.raises(TimeoutError, match=rf"no message from ws://{url}/rooms/a within 0.1s"):
            await client.recv(timeout=0.1)


async def test_expect_close_returns_and_checks_the_close() -> None:
    async with serve(make_app()) as url:
        async with connect(f"ws://{url}/bye") as client:
            await client.send("ann")
            assert await client.expect_close(4001, "bye ann") == (4001, "bye ann")
        async with connect(f"ws://{url}/bye") as client:
            await client.send("bob")
            with pytest.raises(AssertionError, match=r"closed with 4001 'bye bob', expected 1000"):
                await client.expect_close(1000)
        async with connect(f"ws://{url}/echo") as client:
            await client.send("still here")
            with pytest.raises(AssertionError, match="got the message 'still here'"):
                await client.expect_close()
            with pytest.raises(TimeoutError, match=r"did not close within 0\.1s"):
                await client.expect_close(timeout=0.1)


async def test_eventually() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0\.05s waiting for the answer"):
        await eventually(lambda: False, timeout=0.05, what="the answer")
    calls: list[int] = []

    async def ready() -> int:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else 0

    assert await eventually(ready) == 3


async def test_multiplex_client_over_serve() -> None:
    async with serve(make_app()) as url, MultiplexClient.connect(f"ws://{url}/rooms/a") as mux:
        assert mux.first_topic == "/rooms/a"
        assert await mux.subscribe("/rooms/b") == Ok("SUBSCRIBE", ("/rooms/b",))
        assert await mux.subscribe("/nowhere") == Err("404 Not Found", "SUBSCRIBE", ("/nowhere",))
        await mux.send("/rooms/a", "to a")
        await mux.send("/rooms/b", "to b")
        assert await mux.recv_data("/rooms/b") == "to b"
        assert await mux.recv() == DataFrame("/rooms/a", "to a", None)


def test_multiplex_over_the_test_client() -> None:
    with TestClient(make_app()) as client, multiplex_testclient(client, "/rooms/a") as mux:
        assert mux.subscribe("/rooms/b") == Ok("SUBSCRIBE", ("/rooms/b",))
        mux.send("/rooms/a", "to a")
        mux.send("/rooms/b", "to b")
        assert mux.recv_data("/rooms/b") == "to b"  # the frame for /rooms/a stays queued
        assert mux.recv_data("/rooms/a") == "to a"
        with pytest.raises(TimeoutError, match=r"no frame on the socket of /rooms/a within 0\.1s"):
            mux.recv(timeout=0.1)
        assert mux.unsubscribe("/rooms/b") == Ok("UNSUBSCRIBE", ("/rooms/b",))
    with TestClient(make_app()) as client, multiplex_testclient(client, "/bye") as mux:
        mux.send("/bye", "x")  # a handler's close ends the topic, not the socket
        assert mux.recv() == ServerUnsubscribe("/bye", 4001, "bye x")


@pytest.fixture
def wsroute_app() -> FastAPI:
    return make_app()


async def test_the_plugins_fixtures(wsroute_url: str, wsroute_server: Any) -> None:
    async with connect(f"ws://{wsroute_url}/echo") as client:
        await client.send("fixture")
        assert await client.recv() == "fixture"
    async with wsroute_server(make_app(), ws="wsproto") as url, connect(f"{url}/echo") as client:
        await client.send("factory")
        assert await client.recv() == "factory"


APP = """
from fastapi import FastAPI
from wsroute import Channel, WsRouter

ws = WsRouter()

@ws.message("/echo")
async def echo(data: str, channel: Channel) -> None:
    await channel.send(data.upper())

app = FastAPI()
ws.install(app)
"""

TESTS = """
import pytest
from app import app
from wsroute.testing import connect

@pytest.fixture
def wsroute_app():
    return app

async def test_fixture(wsroute_url):
    async with connect(f"ws://{wsroute_url}/echo") as ws:
        await ws.send("hi")
        assert await ws.recv() == "HI"

async def test_factory(wsroute_server):
    async with wsroute_server(app) as url, connect(f"{url}/echo") as ws:
        await ws.send("yo")
        assert await ws.recv() == "YO"
"""

PYPROJECT = """
[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
pythonpath = ["."]
"""


def test_a_fresh_project_runs_with_plain_pytest(tmp_path: Path) -> None:
    project = tmp_path / "fresh"
    (project / "tests").mkdir(parents=True)
    (project / "app.py").write_text(textwrap.dedent(APP))
    (project / "tests" / "test_app.py").write_text(textwrap.dedent(TESTS))
    (project / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
