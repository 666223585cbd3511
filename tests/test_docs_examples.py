"""The documentation's code, run: every ``docs/examples/*.py`` imports and serves what the
guide says it serves, on a real uvicorn; every registration mistake raises; the site builds
with ``mkdocs build --strict`` and makes no request outside the page's own host.

So the guide cannot drift from the code: a change that breaks an example breaks a test.
"""

from __future__ import annotations

import html as html_lib
import importlib
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from support.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from support.clients import assert_silent, connect, recv, refused
from wsroute import RegistrationError
from wsroute.asyncapi import asyncapi_for_app
from wsroute.testing import eventually, serve

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
MISTAKES = EXAMPLES / "mistakes"

# Examples that are scripts, not apps.
SCRIPTS = {"publisher"}

if str(EXAMPLES) not in sys.path:
    # Appended, not prepended: an example never shadows an installed module.
    sys.path.append(str(EXAMPLES))


def example(name: str) -> ModuleType:
    """Import ``docs/examples/<name>.py`` (once) and check it is the file we meant."""
    module = importlib.import_module(name)
    assert Path(str(module.__file__)).resolve() == EXAMPLES / f"{name}.py", module.__file__
    return module


def example_names() -> list[str]:
    return sorted(path.stem for path in EXAMPLES.glob("*.py"))


def _mistakes() -> list[str]:
    return sorted(path.stem for path in MISTAKES.glob("*.py"))


def _load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wsroute_docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def closed_with(client: Any) -> tuple[int, str]:
    """The server's close frame as (code, reason); it must come next: unlike `close_seen`,
    which skips messages, a message before it fails the test."""
    with pytest.raises(ConnectionClosed) as info:
        await recv(client)
    assert info.value.rcvd is not None
    return info.value.rcvd.code, info.value.rcvd.reason


# --- every file is used, imports, and is an app -------------------------------------------


@pytest.mark.parametrize("name", [n for n in example_names() if not n.startswith("test_")])
def test_example_imports_and_defines_an_app(name: str) -> None:
    module = example(name)
    if name in SCRIPTS:
        assert callable(module.main)
    else:
        assert isinstance(module.app, Starlette), f"{name}.py must define `app`"


def test_every_example_file_is_shown_in_the_docs() -> None:
    pages = "\n".join(path.read_text() for path in DOCS.glob("*.md"))
    # The pages show each file inline, behind its marker (docs/snippets.py checks the text).
    included = set(re.findall(r"<!-- snippet: docs/examples/([^ :]+)", pages))
    files = {p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*") if p.is_file()}
    files = {f for f in files if "__pycache__" not in f}
    assert files - included == set(), "example files no page includes"


# --- registration errors ----------------------------------------------------------------------


@pytest.mark.parametrize("name", _mistakes())
def test_each_mistake_raises_a_registration_error(name: str) -> None:
    message = _load_hooks().mistake_message(name)
    kind, _, text = message.partition(": ")
    assert kind in ("RegistrationError", "ValueError"), message
    assert text
    if kind == "RegistrationError":
        assert issubclass(RegistrationError, TypeError)
    page = (DOCS / "registration-errors.md").read_text()
    assert f"<!-- registration-error: {name} -->" in page


def test_a_mistake_that_raises_nothing_fails_the_build(tmp_path: Path) -> None:
    hooks = _load_hooks()
    hooks.MISTAKES = tmp_path
    (tmp_path / "fine.py").write_text("x = 1\n")
    with pytest.raises(RuntimeError, match="raised nothing"):
        hooks.mistake_message("fine")


# --- getting started --------------------------------------------------------------------------


async def test_echo_page_and_socket() -> None:
    echo = example("echo")
    async with serve(echo.app) as host:
        async with httpx.AsyncClient(trust_env=False) as http:
            declarations = await http.get(f"http://{host}/wsroute/multiplex.d.ts")
            assert declarations.status_code == 200 and "MultiplexWebSocket" in declarations.text
            page = await http.get(f"http://{host}/")
            assert page.status_code == 200 and "Echo Server" in page.text
            assert (await http.get(f"http://{host}/echo")).status_code == 426
        async with connect(f"ws://{host}/echo") as client:
            for text in ("hello", "ünïcødé"):
                await client.send(text)
                assert await recv(client) == text


async def test_typed_messages() -> None:
    typed = example("typed_messages")
    async with serve(typed.app) as host:
        async with connect(f"ws://{host}/game") as client:
            await client.send('{"x": 1, "y": 2}')
            assert await recv(client) == '{"x":2,"y":1,"at":null}'
        async with connect(f"ws://{host}/upload") as client:
            await client.send(b"\x00" * 10)
            assert await recv(client) == "10 bytes"
            await client.send("text")
            assert await closed_with(client) == (1003, "this handler takes binary messages, not text")
        async with connect(f"ws://{host}/any") as client:
            await client.send("t")
            assert await recv(client) == "t"
            await client.send(b"b")
            assert await recv(client) == b"b"
        async with connect(f"ws://{host}/raw") as client:
            await client.send(b"abc")
            assert await recv(client) == '{"kind":"binary","length":3}'
        async with connect(f"ws://{host}/sum") as client:
            await client.send("[1, 2, 3]")
            assert await recv(client) == "6"
        async with connect(f"ws://{host}/commands") as client:
            await client.send('{"type": "join", "room": "lobby"}')
            assert await recv(client) == "joined lobby"
            await client.send('{"type": "say", "text": "hi"}')
            assert await recv(client) == "said hi"
            await client.send('{"type": "join", "room": 5}')
            reason = "invalid message: join.room: Input should be a valid string"
            assert await closed_with(client) == (1007, reason)
        async with connect(f"ws://{host}/commands") as client:
            await client.send('{"type": "leave"}')
            assert await closed_with(client) == (
                1007,
                "invalid message: Input tag 'leave' found using 'type' does not match any of the"
                " expected tags: 'join', 'say'",
            )
        async with connect(f"ws://{host}/volume") as client:
            await client.send("10")
            assert await recv(client) == "volume 10"
            await client.send("11")
            reason = "invalid message: Input should be less than or equal to 10"
            assert await closed_with(client) == (1007, reason)


# --- broadcasts and rooms ---------------------------------------------------------------------


async def test_broadcast_and_rooms() -> None:
    broadcast, rooms = example("broadcast"), example("rooms")
    async with (
        serve(broadcast.app) as host,
        connect(f"ws://{host}/listen") as a,
        connect(f"ws://{host}/listen") as b,
    ):
        await a.send("hi")
        assert await recv(a) == "hi" and await recv(b) == "hi"
    async with serve(rooms.app) as host:
        async with (
            connect(f"ws://{host}/lobby") as a,
            connect(f"ws://{host}/lobby") as b,
            connect(f"ws://{host}/global") as other,
        ):
            await a.send("hi lobby")
            assert await recv(a) == "hi lobby" and await recv(b) == "hi lobby"
            await assert_silent(other, 0.2)
        async with (
            connect(f"ws://{host}/rooms/red?name=ann") as ann,
            connect(f"ws://{host}/rooms/red?name=bob") as bob,
            connect(f"ws://{host}/rooms/red/typing?name=ann") as ann_typing,
            connect(f"ws://{host}/rooms/red/typing?name=bob") as bob_typing,
        ):
            await ann.send("hello")
            assert await recv(bob) == "ann in red: hello"  # the query is not part of the topic
            assert await recv(ann) == "ann in red: hello"
            await ann_typing.send("")
            assert await recv(bob_typing) == "ann is typing"
            await assert_silent(ann_typing, 0.2)  # exclude_self


async def test_query_in_topic() -> None:
    topics = example("topics")
    async with serve(topics.app) as host:
        async with connect(f"ws://{host}/chat?token=a") as a, connect(f"ws://{host}/chat?token=b") as b:
            await a.send("one room")
            assert await recv(b) == "one room"
        assert (await refused(f"ws://{host}/chat")).status_code == 422
        async with (
            connect(f"ws://{host}/prices?symbol=ACME") as acme,
            connect(f"ws://{host}/prices?symbol=INIT") as init,
            connect(f"ws://{host}/prices/publish?symbol=ACME") as publisher,
        ):
            assert await recv(acme) == "watching /prices?symbol=ACME"
            assert await recv(init) == "watching /prices?symbol=INIT"
            await publisher.send("101.5")
            assert await recv(acme) == "ACME 101.5"
            await assert_silent(init, 0.2)


async def test_ranks_forward_and_catch_all_leave(caplog: pytest.LogCaptureFixture) -> None:
    ranks = example("ranks")
    caplog.set_level(logging.INFO, logger="ranks")
    async with serve(ranks.app) as host:
        for path, headers, expected in (
            ("/ann", {"Cookie": "role=admin"}, "admin ann: m"),
            ("/ann", {}, "user ann: m"),
            ("/status", {"Cookie": "role=admin"}, "all good"),
        ):
            async with connect(f"ws://{host}{path}", additional_headers=headers) as client:
                await client.send("m")
                assert await recv(client) == expected
        await eventually(lambda: caplog.text.count("closed with 1000") >= 3, what="three leaves")
    assert "/status closed with 1000" in caplog.text


# --- guards -----------------------------------------------------------------------------------


async def test_guards_reject_with_status_and_decode_once() -> None:
    guards = example("auth_guards")
    async with serve(guards.app) as host:
        response = await refused(f"ws://{host}/rooms/lobby")
        assert response.status_code == 401 and response.body == b'{"detail":"log in first"}'
        response = await refused(f"ws://{host}/rooms/staff?token=t-bob")
        assert response.status_code == 403 and response.body == b'{"detail":"not a member of staff"}'
        guards.DECODES.clear()
        async with connect(f"ws://{host}/rooms/staff?token=t-ann") as ann:
            for n in range(3):
                await ann.send(str(n))
                assert await recv(ann) == f"ann@staff: {n}"
        assert len(guards.DECODES) == 1  # two guards, three messages, one decode
        async with connect(f"ws://{host}/rooms/lobby", additional_headers={"Cookie": "token=t-bob"}) as bob:
            await bob.send("hi")
            assert await recv(bob) == "bob@lobby: hi"
        guards.DECODES.clear()
        async with connect(f"ws://{host}/news?token=t-ann") as ann, connect(f"ws://{host}/news") as guest:
            for n in range(2):
                await ann.send(f"page {n}")
                await guest.send(f"page {n}")
                assert await recv(ann) == f"ann asked for page {n}"
                assert await recv(guest) == f"a guest asked for page {n}"
        assert len(guards.DECODES) == 2  # once per connection, the refused guest's too


async def test_bearer_guard_opens_with_a_token_and_refuses_401_without() -> None:
    bearer = example("bearer_guard")
    async with serve(bearer.app) as host:
        url = f"ws://{host}/api/feed"
        for header in ("Bearer tok-ann", "bearer tok-ann"):  # the scheme is case-insensitive
            async with connect(url, additional_headers={"Authorization": header}) as client:
                await client.send("hi")
                assert await recv(client) == "ann: hi"
        for headers in (
            {},
            {"Authorization": "Bearer nope"},
            {"Authorization": "Basic dG9rLWFubg=="},
            {"Authorization": "tok-ann"},
        ):
            response = await refused(url, additional_headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.body == b'{"detail":"a valid bearer token is required"}'
    schemes = asyncapi_for_app(bearer.app)["components"]["securitySchemes"]
    assert schemes["Caller"] == {"type": "http", "scheme": "bearer"}


async def test_fastapi_security_dependencies() -> None:
    security = example("security_deps")
    async with serve(security.app) as host:
        good = {"Authorization": "Bearer secret-token"}
        async with connect(f"ws://{host}/bearer", additional_headers=good) as client:
            await client.send("x")
            assert await recv(client) == "ann: x"
        response = await refused(f"ws://{host}/bearer", additional_headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert (await refused(f"ws://{host}/bearer")).status_code == 401
        async with connect(f"ws://{host}/service", additional_headers={"X-API-Key": "k1"}) as client:
            await client.send("x")
            assert await recv(client) == "key k1"
        async with connect(f"ws://{host}/widget?api_key=k2") as client:
            await client.send("x")
            assert await recv(client) == "key k2"
        async with connect(f"ws://{host}/app", additional_headers={"Cookie": "session=s3"}) as client:
            await client.send("x")
            assert await recv(client) == "session s3"
        for path in ("/service", "/widget", "/app"):
            assert (await refused(f"ws://{host}{path}")).status_code == 401


async def test_oauth2_scopes() -> None:
    scopes = example("security_scopes")
    ann, bob = ({"Authorization": f"Bearer t-{name}"} for name in ("ann", "bob"))
    async with serve(scopes.app) as host:
        async with connect(f"ws://{host}/chat/read", additional_headers=bob) as client:
            await client.send("x")
            assert await recv(client) == "bob reads"
        response = await refused(f"ws://{host}/chat/post", additional_headers=bob)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer scope="chat:read chat:write"'
        assert response.body == b'{"detail":"not enough permissions"}'
        async with connect(f"ws://{host}/chat/post", additional_headers=ann) as client:
            await client.send("hi")
            assert await recv(client) == "ann: hi"
        eve = {"Authorization": "Bearer t-eve"}
        response = await refused(f"ws://{host}/chat/read", additional_headers=eve)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer scope="chat:read"'
    document = asyncapi_for_app(scopes.app)
    (post,) = document["operations"]["chat_post.receive"]["security"]
    assert post["$ref"].endswith("/OAuth2PasswordBearer.chat_read.chat_write")
    scheme = document["components"]["securitySchemes"]["OAuth2PasswordBearer.chat_read.chat_write"]
    assert scheme["scopes"] == ["chat:read", "chat:write"]
    assert set(scheme["flows"]["password"]["availableScopes"]) == {"chat:read", "chat:write"}


async def test_origin_policy() -> None:
    origins = example("origins")
    async with serve(origins.app) as host:
        response = await refused(f"ws://{host}/echo", origin="https://evil.example")
        assert response.status_code == 403
        assert response.body == b'{"detail":"cross-origin WebSocket not allowed"}'
        for origin in ("https://app.example.com", f"http://{host}", None):
            async with connect(f"ws://{host}/echo", origin=origin) as client:
                await client.send("ok")
                assert await recv(client) == "ok"


# --- join and leave, dependencies -------------------------------------------------------------


async def test_join_and_leave_presence() -> None:
    join_leave = example("join_leave")
    async with serve(join_leave.app) as host:
        async with connect(f"ws://{host}/rooms/a?name=ann") as ann:
            assert await recv(ann) == '{"event":"join","name":"ann","online":["ann"]}'
            async with connect(f"ws://{host}/rooms/a?name=bob") as bob:
                joined = '{"event":"join","name":"bob","online":["ann","bob"]}'
                assert await recv(bob) == joined and await recv(ann) == joined
                await bob.send("hi")
                assert await recv(ann) == '{"event":"message","name":"bob","text":"hi"}'
                await bob.close(4000, "gone fishing")
            assert await recv(ann) == '{"event":"leave","name":"bob","code":4000,"reason":"gone fishing"}'
        await eventually(lambda: join_leave.online["a"] == set(), what="presence emptied")


async def test_send_only_join() -> None:
    ticker = example("ticker")
    ticker.INTERVAL = 0.01
    async with serve(ticker.app) as host:
        async with connect(f"ws://{host}/clock") as client:
            assert [await recv(client) for _ in range(3)] == ['{"tick":0}', '{"tick":1}', '{"tick":2}']
        await eventually(lambda: ticker.ws.broker.local_topics() == {}, what="unsubscribed")


async def test_dependency_scopes() -> None:
    deps = example("dependencies")
    async with serve(deps.app) as host:
        assert (await refused(f"ws://{host}/notes")).status_code == 401
        deps.LOG.clear()
        async with connect(f"ws://{host}/notes", additional_headers={"X-User": "ann"}) as client:
            for n in (1, 1, 1):
                await client.send('{"text": "note"}')
                assert await recv(client) == f'{{"user":"ann","notes":{n}}}'
        assert deps.LOG == ["current_user"] + ["db open", "db close"] * 3
        deps.LOG.clear()
        async with connect(f"ws://{host}/feed", additional_headers={"X-User": "ann"}) as client:
            for _ in range(2):
                await client.send("x")
                assert await recv(client) == "subscribed valid=True"
        await eventually(lambda: "feed close" in deps.LOG, what="teardown at leave")
        assert deps.LOG == ["feed open", "token check", "token check", "feed close"]


# --- the broker -------------------------------------------------------------------------------


async def test_broker_in_handlers_http_routes_and_tasks() -> None:
    broker_http = example("broker_http")
    broker_http.CLOCK_INTERVAL = 0.05
    async with (
        serve(broker_http.app) as host, connect(f"ws://{host}/inbox/bob") as inbox,
        connect(f"ws://{host}/dm/ann?to=bob") as ann,
        connect(f"ws://{host}/rooms/news") as news,
        connect(f"ws://{host}/rooms/lobby") as lobby,
    ):
        assert await recv(inbox) == "inbox of bob"
        await ann.send("hi")
        assert await recv(inbox) == "ann: hi"
        async with httpx.AsyncClient(trust_env=False) as http:
            now = await http.post(f"http://{host}/rooms/news/announce", params={"text": "extra"})
            assert now.json() == {"sent": "extra"}
            assert await recv(news) == "[announcement] extra"
            later = await http.post(f"http://{host}/rooms/news/later", params={"text": "soon"})
            assert later.status_code == 200
            assert await recv(news) == "[later] soon"
        assert await recv(lobby) == "tick"


async def test_write_only_publisher() -> None:
    from support.redis_server import require_redis

    url = require_redis()
    publisher = example("publisher")
    from fastapi import FastAPI

    from wsroute import Channel, WsRouter

    ws = WsRouter(broker=url)

    @ws.join("/rooms/{room}")
    async def joined(channel: Channel) -> None:
        await channel.send("in")

    app = FastAPI()
    ws.install(app)
    async with serve(app) as host, connect(f"ws://{host}/rooms/docs-publisher") as client:
        assert await recv(client) == "in"
        await publisher.main(url, "/rooms/docs-publisher", "maintenance in 5 minutes")
        assert await recv(client) == "maintenance in 5 minutes"


# --- multiplexing -----------------------------------------------------------------------------


def _transcript() -> Iterator[tuple[str, str]]:
    for line in (EXAMPLES / "multiplex_session.txt").read_text().splitlines():
        if line.startswith(("> ", "< ")):
            yield line[0], line[2:]


async def test_the_protocol_transcript_replays() -> None:
    multiplex = example("multiplex_app")
    first = (EXAMPLES / "multiplex_session.txt").read_text().splitlines()[0]
    connect_url = re.search(r"ws://\S+", first)
    assert connect_url is not None
    path = connect_url.group(0).split("8000", 1)[1].rstrip(",")
    async with serve(multiplex.app) as host:
        mux = [Subprotocol("rocket-multiplex")]
        async with connect(f"ws://{host}{path}", subprotocols=mux) as client:
            assert client.subprotocol == "rocket-multiplex"
            for direction, frame in _transcript():
                if direction == ">":
                    await client.send(frame)
                else:
                    assert await recv(client) == frame
            await assert_silent(client, 0.2)


async def test_the_js_client_is_served() -> None:
    multiplex = example("multiplex_app")
    shipped = (ROOT / "wsroute" / "static" / "multiplex.js").read_text()
    async with serve(multiplex.app) as host, httpx.AsyncClient(trust_env=False) as http:
        script = await http.get(f"http://{host}/wsroute/multiplex.js")
        assert script.status_code == 200 and script.text == shipped
        assert "javascript" in script.headers["content-type"]
        declarations = await http.get(f"http://{host}/wsroute/multiplex.d.ts")
        assert declarations.status_code == 200 and "MultiplexWebSocket" in declarations.text
        page = await http.get(f"http://{host}/")
        assert 'from "/wsroute/multiplex.js"' in page.text


@pytest.mark.browser
async def test_the_guide_pages_work_in_a_browser() -> None:
    """The echo page and the multiplexed two-room page, in headless Chromium."""
    require_chromium()
    from playwright.async_api import async_playwright

    echo, multiplex = example("echo"), example("multiplex_app")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            async with serve(echo.app) as host:
                page = await browser.new_page()
                await page.goto(f"http://{host}/")
                await page.wait_for_function("document.getElementById('status').innerText === 'Connected :)'")
                await page.fill("#text", "hello page")
                await page.click("#send")
                await page.wait_for_selector("#lines p:has-text('hello page')", timeout=5000)
            async with serve(multiplex.app) as host:
                sockets: list[str] = []
                page = await browser.new_page()
                page.on("websocket", lambda ws: sockets.append(ws.url))
                await page.goto(f"http://{host}/?name=pat")
                await page.wait_for_selector("#lobby.open", timeout=5000)
                await page.wait_for_selector("#games.open", timeout=5000)
                await page.wait_for_selector("#games li:has-text('* pat joined #games')", timeout=5000)
                await page.fill("#games input", "gg")
                await page.click("#games button")
                await page.wait_for_selector("#games li:has-text('pat: gg')", timeout=5000)
                assert await page.locator("#lobby li:has-text('pat: gg')").count() == 0
                assert len(sockets) == 1  # two topics, one physical socket
        finally:
            await browser.close()


# --- errors and limits ------------------------------------------------------------------------


async def test_errors_limits_and_exception_handlers() -> None:
    errors = example("errors_limits")
    errors.board.clear()
    async with serve(errors.app) as host:
        async with connect(f"ws://{host}/game") as client:
            await client.send('{"x": 9, "y": 0}')
            assert await recv(client) == '{"error":"invalid message: x: Input should be less than 8"}'
            await client.send("nope")
            assert await recv(client) == (
                '{"error":"invalid message: Invalid JSON: expected ident at line 1 column 2"}'
            )
            await client.send('{"x": 1, "y": 1}')  # still open
            assert await recv(client) == '{"x":1,"y":1}'
            await client.send('{"x": 1, "y": 1}')
            assert await closed_with(client) == (4409, "square taken")
        async with connect(f"ws://{host}/game") as client:
            await client.send("x" * (64 * 1024 + 1))
            assert await closed_with(client) == (1009, "message too big: over 65536 bytes")
        async with connect(f"ws://{host}/upload", max_size=None) as client:
            await client.send(b"x" * (4 * 1024 * 1024))
            assert await recv(client) == "4194304 bytes"
            await client.send(b"x" * (5 * 1024 * 1024))
            assert await closed_with(client) == (1009, "message too big: 5242880 bytes, limit 4194304")
        async with connect(f"ws://{host}/upload") as client:
            await client.send("text")
            assert await closed_with(client) == (1003, "this handler takes binary messages, not text")
        errors.board.clear()
        async with connect(f"ws://{host}/game") as client:
            for n in range(25):
                await client.send(f'{{"x": {n % 8}, "y": {n // 8}}}')
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await recv(client)
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (1008, "rate limit exceeded")
        errors.board.clear()
        errors.board.update((x, y) for x in range(8) for y in range(8) if (x, y) != (0, 0))
        async with connect(f"ws://{host}/game") as client:
            await client.send('{"x": 0, "y": 0}')
            assert await closed_with(client) == (4000, "board full")


async def test_rate_limits_per_route_the_same_on_a_socket_and_on_a_topic() -> None:
    limits = example("rate_limits")
    from wsroute.multiplex.codec import SEP

    over = '{"error":"rate limit exceeded"}'
    async with serve(limits.app) as host:
        async with connect(f"ws://{host}/chat/lobby") as client:
            for i in range(10):
                await client.send(f"m{i}")
                assert await recv(client) == f"m{i}"
            await client.send("m10")  # dropped; the handler answers and the socket stays
            assert await recv(client) == over
            await client.send("m11")
            assert await recv(client) == over
        multiplex = [Subprotocol("rocket-multiplex")]
        async with connect(f"ws://{host}/typing/lobby", subprotocols=multiplex) as mux:
            await mux.send(f"{SEP}SUBSCRIBE{SEP}/chat/lobby")
            assert await recv(mux) == f"{SEP}OK{SEP}SUBSCRIBE{SEP}/chat/lobby"
            for i in range(10):
                await mux.send(f"/chat/lobby{SEP}m{i}")
                assert await recv(mux) == f"/chat/lobby{SEP}m{i}"
            await mux.send(f"/chat/lobby{SEP}m10")
            assert await recv(mux) == f"/chat/lobby{SEP}{over}"
            for i in range(15):  # the other topic has its own allowance, untouched
                await mux.send(f"/typing/lobby{SEP}t{i}")
                assert await recv(mux) == f"/typing/lobby{SEP}t{i}"
            await mux.send(f"{SEP}UNSUBSCRIBE{SEP}/chat/lobby")  # still open, until now
            assert await recv(mux) == f"{SEP}OK{SEP}UNSUBSCRIBE{SEP}/chat/lobby"


async def test_close_reasons_the_errors_page_lists() -> None:
    """The reasons in the close-code table that errors_limits.py does not produce."""
    myapp = example("myapp")
    from fastapi import FastAPI

    from wsroute import Channel, WsRouter

    ws = WsRouter()

    @ws.join("/j")
    async def joined(channel: Channel) -> None:
        pass

    @ws.message("/t")
    async def text_only(data: str) -> None:
        pass

    @ws.message("/b")
    async def binary_only(data: bytes) -> None:
        pass

    @ws.message("/boom")
    async def boom(data: str) -> None:
        raise RuntimeError("a bug")

    app = FastAPI()
    ws.install(app)
    async with serve(app) as host:
        for path, message, expected in (
            ("/j", "x", (1003, "no message handler accepted the message on /j")),
            ("/t", b"x", (1003, "this handler takes text messages, not binary")),
            ("/boom", "x", (1011, "Internal Error")),
            # The default max_message_size, 1 MiB, as the page's table gives it.
            ("/t", "x" * (1024 * 1024 + 1), (1009, "message too big: over 1048576 bytes")),
            ("/b", b"x" * (1024 * 1024 + 1), (1009, "message too big: 1048577 bytes, limit 1048576")),
        ):
            async with connect(f"ws://{host}{path}") as client:
                await client.send(message)
                assert await closed_with(client) == expected
    async with serve(myapp.app) as host, connect(f"ws://{host}/double") as client:
        await client.send('{"x": 1}')
        assert await closed_with(client) == (1007, "invalid message: y: Field required")
    page = (DOCS / "errors.md").read_text()
    for reason in (
        "no message handler accepted the message on /j",
        "this handler takes text messages, not binary",
        "invalid message: y: Field required",
        "invalid message: Invalid JSON: expected ident at line 1 column 2",
        "message too big: over 1048576 bytes",
        "message too big: 1048577 bytes, limit 1048576",
        "message too big: over 65536 bytes",  # what errors_limits.py's own 64 KiB gives
        "rate limit exceeded",
        "slow consumer",
        "Internal Error",
    ):
        assert reason in page


# --- AsyncAPI ---------------------------------------------------------------------------------


def _operations(document: dict[str, Any], address: str) -> list[dict[str, Any]]:
    channel_id = next(key for key, ch in document["channels"].items() if ch["address"] == address)
    return [
        op for op in document["operations"].values() if op["channel"]["$ref"] == f"#/channels/{channel_id}"
    ]


async def test_asyncapi_document_and_page() -> None:
    asyncapi_app = example("asyncapi_app")
    async with serve(asyncapi_app.app) as host, httpx.AsyncClient(trust_env=False) as http:
        document = (await http.get(f"http://{host}/asyncapi.json")).json()
        page = await http.get(f"http://{host}/asyncapi")
    assert document["asyncapi"] == "3.0.0"
    assert document["info"] == {"title": "Chat API", "version": "1.2.0", "description": "Rooms and presence."}
    assert document["servers"]["default"]["host"] == host
    assert "x-wsroute-multiplex" in document["servers"]["default"]
    rooms = next(ch for ch in document["channels"].values() if ch["address"] == "/rooms/{room}")
    assert set(rooms["parameters"]) == {"room"}
    operations = _operations(document, "/rooms/{room}")
    received = [op for op in operations if op["action"] == "receive"]
    assert len(received) == 1  # one message handler
    assert received[0]["summary"] == "Say something in a room."
    assert received[0]["description"] == "Everyone in the room receives it, the sender included."
    sent = {
        ref["$ref"].rsplit("/", 1)[1] for op in operations if op["action"] == "send" for ref in op["messages"]
    }
    assert sent == {"Presence", "Said"}  # sends=[Presence] and Channel[Said]
    schemes = document["components"]["securitySchemes"]
    assert schemes["User"] == {
        "type": "httpApiKey",
        "name": "token",
        "in": "query",
        "description": "Session token",
    }
    assert schemes["HTTPBearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    for op in operations:  # the join handler's guard gates every operation of the route
        assert op["security"] == [{"$ref": "#/components/securitySchemes/User"}]
    assert {"Say", "Said", "Presence"} <= set(document["components"]["schemas"])
    assert page.status_code == 200 and '<meta charset="utf-8">' in page.text
    assert "/asyncapi/static/index.js" in page.text


def test_asyncapi_command_line(tmp_path: Path) -> None:
    asyncapi_app = example("asyncapi_app")
    output = tmp_path / "asyncapi.json"
    command = [sys.executable, "-m", "wsroute", "asyncapi", "asyncapi_app:app"]
    printed = subprocess.run(command, cwd=EXAMPLES, capture_output=True, text=True, timeout=60, check=True)
    subprocess.run([*command, "--output", str(output)], cwd=EXAMPLES, timeout=60, check=True)
    expected = asyncapi_for_app(asyncapi_app.app)
    assert json.loads(printed.stdout) == expected
    assert json.loads(output.read_text()) == expected


def test_the_embedded_chat_document_is_the_command_lines() -> None:
    page = (DOCS / "asyncapi.md").read_text()
    target = re.search(r"<!-- asyncapi-document: (\S+) -->", page)
    assert target is not None
    command = [sys.executable, "-m", "wsroute", "asyncapi", target.group(1)]
    printed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    module, _, attribute = target.group(1).partition(":")
    embedded = _load_hooks().asyncapi_json(module, attribute)
    assert json.loads(embedded) == json.loads(printed.stdout)


# --- the testing guide ------------------------------------------------------------------------


def _guide_tests() -> list[str]:
    return sorted(path.name for path in EXAMPLES.glob("test_*.py"))


def test_the_testing_guides_tests_pass_with_its_pytest_recipe(tmp_path: Path) -> None:
    """The guide's test files, run by plain pytest with the settings the guide gives (and the
    plugin installed with wsroute), not with this suite's."""
    page = (DOCS / "testing.md").read_text()
    recipe = re.search(r"```toml\n(\[tool\.pytest\.ini_options\].*?)```", page, re.DOTALL)
    assert recipe is not None and 'asyncio_mode = "auto"' in recipe.group(1)
    (tmp_path / "pyproject.toml").write_text(recipe.group(1))
    files = _guide_tests()
    assert files == ["test_myapp.py", "test_myapp_browser.py", "test_myapp_unit.py"]
    config = ["-c", str(tmp_path / "pyproject.toml"), "--rootdir", str(EXAMPLES)]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *config, *files],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b\d+ passed\b", result.stdout) and " failed" not in result.stdout
    if os.path.exists(CHROMIUM):
        assert " skipped" not in result.stdout, result.stdout  # the browser test ran too


# --- the site ---------------------------------------------------------------------------------


def _mkdocs() -> list[str]:
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "mkdocs is not installed, and CI=true: install the docs extra (pip install -e '.[docs]')"
            )
        pytest.skip("mkdocs is not installed: pip install -e '.[docs]' to build the site")
    return [sys.executable, "-m", "mkdocs"]


_EXTERNAL = re.compile(
    r'<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)="(?:https?:)?//', re.IGNORECASE
)


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once with ``mkdocs build --strict`` into a temporary directory."""
    command = _mkdocs()
    site = tmp_path_factory.mktemp("docs") / "site"
    result = subprocess.run(
        [*command, "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return site


@pytest.mark.frontend
def test_mkdocs_build_strict(built_site: Path) -> None:
    pages = list(built_site.rglob("*.html"))
    assert len(pages) > 10
    for page in pages:
        html = page.read_text()
        match = _EXTERNAL.search(html)
        assert match is None, f"{page.relative_to(built_site)} loads from another host: {match}"
        assert "fonts.googleapis" not in html and "fonts.gstatic" not in html
    errors_page = html_lib.unescape((built_site / "registration-errors" / "index.html").read_text())
    assert "RegistrationError: app.joined: parameter 'data': a join handler has no message" in errors_page
    assert "<!-- registration-error:" not in errors_page
    assert not (built_site / "examples").exists() and not (built_site / "hooks.py").exists()
    assert not (built_site / "snippets.py").exists()
    # The snippet markers are for docs/snippets.py; the hook keeps them out of the pages.
    assert not any("<!-- snippet:" in page.read_text() for page in pages)
    asyncapi_html = (built_site / "asyncapi" / "index.html").read_text()
    asyncapi_page = html_lib.unescape(re.sub(r"<[^>]+>", "", asyncapi_html))
    assert '"asyncapi": "3.0.0"' in asyncapi_page and "<!-- asyncapi-document:" not in asyncapi_page


def _page_paths(site: Path) -> list[str]:
    """Every page's URL path relative to the site root ("" for the home page)."""
    paths = (html.parent.relative_to(site).as_posix() for html in site.rglob("index.html"))
    return sorted("" if path == "." else f"{path}/" for path in paths)


@pytest.mark.frontend
@pytest.mark.browser
async def test_the_site_requests_nothing_from_other_hosts(built_site: Path) -> None:
    """Every page, in Chromium: no request leaves 127.0.0.1 (no font, CDN or analytics)."""
    require_chromium()
    import functools
    import http.server
    import threading

    from playwright.async_api import async_playwright

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(built_site))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    requested: list[str] = []
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                page.on("request", lambda request: requested.append(request.url))
                for path in _page_paths(built_site):
                    url = f"{base}/{path}"
                    # The pages share their scripts: let the first one run to idle (search
                    # index, worker), the rest only load.
                    idle = "networkidle" if not path else "load"
                    response = await page.goto(url, wait_until=idle)
                    assert response is not None and response.ok, url
            finally:
                await browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    outside = [url for url in requested if not url.startswith((base, "data:", "blob:"))]
    assert outside == []
    assert len(requested) > 10


async def test_requests_example_answers_and_refuses() -> None:
    from wsroute.testing import MultiplexClient, RequestError

    shop = example("requests_app")
    shop.STOCK.update({"apple": 3, "pear": 0})
    async with serve(shop.app) as host, MultiplexClient.connect(f"ws://{host}/shop", meta=True) as mux:
        receipt = await mux.request("/shop", '{"item": "apple", "quantity": 2}')
        assert json.loads(receipt) == {"item": "apple", "left": 1}
        for order, code, reason in (
            ('{"item": "kiwi", "quantity": 1}', 4004, "no kiwi here"),
            ('{"item": "apple", "quantity": 5}', 4009, "only 1 left"),
        ):
            with pytest.raises(RequestError) as refused_order:
                await mux.request("/shop", order)
            assert (refused_order.value.code, refused_order.value.reason) == (code, reason)
        # The topic is still open after the error replies.
        assert json.loads(await mux.request("/shop", '{"item": "apple", "quantity": 1}'))["left"] == 0
