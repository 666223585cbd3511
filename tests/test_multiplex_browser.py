"""The rocket-multiplex browser client in real headless Chromium, against a uvicorn subprocess.

A page (``tests/apps/multiplex_page.py``) opens three topics through ``/wsroute/multiplex.js``;
the server, which counts physical WebSocket connections at the ASGI level, must see exactly one.
Messages go both ways on every topic, and broadcasts (from a second page, and from an HTTP
route through `AppBroker`) reach the right topic only. Then the server process is killed and
started again on the same port: the client must reconnect by itself (with backoff), resubscribe
every topic, and carry messages again, still over one socket.

Chromium is Debian's (``/usr/bin/chromium``) driven by the ``playwright`` package; never run
``playwright install``. Only console errors from refused connections while the server is down
are tolerated (see `TOLERATED_CONSOLE_ERROR`); page errors never are.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from support.processes import HOST, ServerProcess, server_process

pytestmark = pytest.mark.browser

ROOT = Path(__file__).parent.parent
TESTS = Path(__file__).parent
TOPICS = ("/rooms/a", "/rooms/b", "/echo")
# Chromium logs a failed WebSocket handshake as a console error; while the server is down that
# is the expected result of each reconnection attempt (and nothing else is).
TOLERATED_CONSOLE_ERROR = re.compile(
    r"^WebSocket connection to 'ws://127\.0\.0\.1:\d+/(rooms/a|rooms/b|echo)"
    r"(\?rocket-multiplex=[^']*)?' failed: "
    r".*net::ERR_CONNECTION_REFUSED\s*$"
)

playwright_api = pytest.importorskip("playwright.async_api")



@dataclass
class Observed:
    """Everything the browser did, with the test phase it happened in."""

    phase: str = "setup"
    requests: list[str] = field(default_factory=list)
    websockets: list[tuple[float, str]] = field(default_factory=list)
    console: list[tuple[str, str, str]] = field(default_factory=list)  # (phase, type, text)
    page_errors: list[str] = field(default_factory=list)


def watch(page: Any, observed: Observed) -> None:
    page.on("console", lambda msg: observed.console.append((observed.phase, msg.type, msg.text)))
    page.on("pageerror", lambda error: observed.page_errors.append(str(error)))
    page.on("websocket", lambda ws: observed.websockets.append((time.monotonic(), ws.url)))


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    with server_process("apps.multiplex_page:app") as process:
        yield process


async def stats(http: httpx.AsyncClient, port: int) -> dict[str, Any]:
    response = await http.get(f"http://{HOST}:{port}/stats")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


async def open_sockets(http: httpx.AsyncClient, port: int, expected: int) -> dict[str, Any]:
    """Poll `/stats` until exactly `expected` physical sockets are open (at most 5 s)."""
    deadline = time.monotonic() + 5
    while True:
        current = await stats(http, port)
        if current["open"] == expected:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {expected} open sockets, server reports {current}")
        await asyncio.sleep(0.05)


async def wait_message(page: Any, topic: str, text: str, timeout: float = 5000) -> None:
    """Wait until `topic` on `page` has received `text`."""
    try:
        await page.wait_for_function(
            "([topic, text]) => mux.topics[topic]?.messages.includes(text)",
            arg=[topic, text],
            timeout=timeout,
        )
    except playwright_api.TimeoutError:
        state = await page.evaluate("mux.state()")
        raise AssertionError(f"{topic} never received {text!r}; page state: {state}") from None


async def wait_all_open(page: Any, opens: int, timeout: float) -> None:
    """Wait until every topic is OPEN and has fired `open` exactly `opens` times."""
    try:
        await page.wait_for_function(
            """([topics, opens]) => topics.every((t) =>
                mux.topics[t]?.ws.readyState === 1 && mux.topics[t].opens === opens)""",
            arg=[list(TOPICS), opens],
            timeout=timeout,
        )
    except playwright_api.TimeoutError:
        state = await page.evaluate("mux.state()")
        raise AssertionError(f"topics not all open ({opens} opens each): {state}") from None


async def exchange_on_every_topic(page: Any, http: httpx.AsyncClient, port: int, tag: str) -> None:
    """page → server → page on each topic; an HTTP broadcast reaches its room only."""
    for topic in TOPICS:
        await page.evaluate("([t, text]) => mux.send(t, text)", [topic, f"{tag} via {topic}"])
    await wait_message(page, "/rooms/a", f"a> {tag} via /rooms/a")
    await wait_message(page, "/rooms/b", f"b> {tag} via /rooms/b")
    await wait_message(page, "/echo", f"echo: {tag} via /echo")

    for room in ("a", "b"):
        response = await http.post(f"http://{HOST}:{port}/rooms/{room}/announce", content=tag)
        assert response.status_code == 200
        await wait_message(page, f"/rooms/{room}", f"announce {room}: {tag}")
    # A round trip on every topic after the announcements: frames on one socket arrive in
    # order, so a misrouted copy would be here by now.
    for topic in TOPICS:
        await page.evaluate("([t, text]) => mux.send(t, text)", [topic, f"{tag} sync"])
    await wait_message(page, "/rooms/a", f"a> {tag} sync")
    await wait_message(page, "/rooms/b", f"b> {tag} sync")
    await wait_message(page, "/echo", f"echo: {tag} sync")
    state = await page.evaluate("mux.state()")
    for topic in TOPICS:
        for room in ("a", "b"):
            got = f"announce {room}: {tag}" in state[topic]["messages"]
            assert got == (topic == f"/rooms/{room}"), (topic, room, state[topic]["messages"])
        others = [m for m in state[topic]["messages"] if tag in m and "via" in m]
        assert all(topic in m for m in others), (topic, others)


async def assert_one_shared_socket(page: Any, http: httpx.AsyncClient, port: int) -> None:
    shared = await page.evaluate(
        """(topics) => {
            const sockets = new Set(topics.map((t) => mux.topics[t].ws.socket));
            const [socket] = sockets;
            return { count: sockets.size, state: socket.state,
                     protocol: socket.webSocket?.protocol, readyState: socket.webSocket?.readyState };
        }""",
        list(TOPICS),
    )
    assert shared == {"count": 1, "state": "open", "protocol": "rocket-multiplex", "readyState": 1}
    server_view = await open_sockets(http, port, 1)
    [physical] = server_view["sockets"]
    assert physical["subprotocol"] == "rocket-multiplex"
    assert physical["path"] in TOPICS


async def test_three_topics_share_one_socket_and_survive_a_restart(
    browser: Any, server: ServerProcess
) -> None:
    started = time.monotonic()
    port = server.port
    base = f"http://{HOST}:{port}"
    observed = Observed()
    context = await browser.new_context()
    context.on("request", lambda request: observed.requests.append(request.url))
    page = await context.new_page()
    watch(page, observed)
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        await page.goto(f"{base}/", timeout=10_000)
        await page.wait_for_function("window.muxReady === true", timeout=5000)

        # Three topics; each sends at once, before it is open (the client buffers).
        observed.phase = "open"
        for topic in TOPICS:
            state = await page.evaluate(
                "(t) => { const s = mux.open(t); mux.send(t, 'early'); return s; }", topic
            )
            assert state == 0  # CONNECTING
        await wait_all_open(page, opens=1, timeout=5000)
        await assert_one_shared_socket(page, http, port)
        await wait_message(page, "/rooms/a", "joined a")
        await wait_message(page, "/rooms/b", "joined b")
        await wait_message(page, "/echo", "joined echo")
        await wait_message(page, "/rooms/a", "a> early")
        await wait_message(page, "/rooms/b", "b> early")
        await wait_message(page, "/echo", "echo: early")
        before = await stats(http, port)
        assert before["accepted"] == 1
        assert sorted(before["events"]) == sorted(f"join {t}" for t in TOPICS)
        assert len(observed.websockets) == 1

        observed.phase = "exchange"
        await exchange_on_every_topic(page, http, port, "first")

        # A second page is a second client (its own socket): its message on /rooms/b reaches
        # the first page's /rooms/b topic only.
        second = await context.new_page()
        watch(second, observed)
        await second.goto(f"{base}/", timeout=10_000)
        await second.wait_for_function("window.muxReady === true", timeout=5000)
        await second.evaluate("mux.open('/rooms/b'); mux.send('/rooms/b', 'hello from page 2')")
        await wait_message(page, "/rooms/b", "b> hello from page 2")
        await wait_message(second, "/rooms/b", "b> hello from page 2")
        assert (await stats(http, port))["open"] == 2  # the counter counts sockets, not pages
        await second.close()
        await open_sockets(http, port, 1)
        state = await page.evaluate("mux.state()")
        assert not any("page 2" in m for t in ("/rooms/a", "/echo") for m in state[t]["messages"])

        # Restart: kill the server, stay down long enough for refused reconnection attempts,
        # start it again on the same port.
        observed.phase = "restart"
        sockets_before = len(observed.websockets)
        killed = time.monotonic()
        server.stop()
        stopped = time.monotonic()
        await page.wait_for_function(
            "(topics) => topics.every((t) => mux.topics[t].ws.readyState === 0)",
            arg=list(TOPICS),
            timeout=5000,
        )
        # Sends while the connection is lost are buffered until the topic is open again.
        for topic in TOPICS:
            await page.evaluate("(t) => mux.send(t, 'while down')", topic)
        await asyncio.sleep(1.5)
        server.start()
        restarted = time.monotonic()
        # Backoff is full jitter capped at 10 s, so the next attempt may be up to 10 s away.
        await wait_all_open(page, opens=2, timeout=15_000)
        reopened = time.monotonic()
        state = await page.evaluate("mux.state()")
        assert all(not t["closes"] and t["errors"] == 0 for t in state.values()), state
        attempts = [t for t, _ in observed.websockets[sockets_before:]]
        print(
            f"\nserver stop took {stopped - killed:.2f}s; down {restarted - stopped:.2f}s; "
            f"{len(attempts)} connection attempts while restarting "
            f"(at +{', +'.join(f'{t - killed:.2f}' for t in attempts)}s after the kill); "
            f"all topics open {reopened - restarted:.2f}s after the server was back"
        )
        assert len(attempts) >= 2  # at least one refused attempt, then the one that worked

        observed.phase = "after restart"
        await assert_one_shared_socket(page, http, port)
        after = await stats(http, port)
        assert after["accepted"] == 1 and after["pid"] != before["pid"]
        assert sorted(after["events"]) == sorted(f"join {t}" for t in TOPICS)  # resubscribed
        for topic, room in zip(TOPICS, ("a", "b", "echo"), strict=True):
            assert state[topic]["messages"].count(f"joined {room}") == 2, state[topic]
        await wait_message(page, "/rooms/a", "a> while down")
        await wait_message(page, "/rooms/b", "b> while down")
        await wait_message(page, "/echo", "echo: while down")
        await exchange_on_every_topic(page, http, port, "second")

        await page.evaluate("mux.render()")
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        await page.screenshot(path=str(ROOT / "test-artifacts" / "multiplex.png"), full_page=True)
    await context.close()

    assert observed.page_errors == []
    unexpected = [
        (phase, kind, text)
        for phase, kind, text in observed.console
        if kind == "error" and not (phase == "restart" and TOLERATED_CONSOLE_ERROR.match(text))
    ]
    assert unexpected == [], f"console errors: {unexpected}"
    tolerated = [text for phase, kind, text in observed.console if kind == "error"]
    print(f"tolerated console errors (refused reconnection attempts): {len(tolerated)}")
    urls = observed.requests + [url for _, url in observed.websockets]
    outside = [url for url in urls if urlsplit(url).hostname != HOST]
    assert outside == [], f"requests outside {HOST}: {outside}"
    output = server.output()
    assert "Traceback" not in output and "ERROR" not in output, output
    assert time.monotonic() - started < 40


async def test_a_subscribe_left_unanswered_replaces_the_socket(browser: Any, server: ServerProcess) -> None:
    """``/stuck``'s guard hangs for 3 s, holding up the socket's frames (they are read in
    order): after its ``replyTimeout`` (1 s here) the client closes that socket with 4408 and
    reconnects, and every topic opens on the new one."""
    port = server.port
    observed = Observed()
    page = await browser.new_page()
    watch(page, observed)
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        await page.goto(f"http://{HOST}:{port}/", timeout=10_000)
        await page.wait_for_function("window.muxReady === true", timeout=5000)
        await page.evaluate("mux.open('/rooms/a', { replyTimeout: 1000 })")
        await wait_message(page, "/rooms/a", "joined a")
        asked = time.monotonic()
        await page.evaluate("mux.open('/stuck')")
        await wait_message(page, "/stuck", "joined stuck", timeout=2500)  # before the 3 s
        print(f"\n/stuck open {time.monotonic() - asked:.2f}s after it was asked")
        state = await page.evaluate("mux.state()")
        assert state["/rooms/a"]["opens"] == 2 and state["/stuck"]["opens"] == 1, state
        assert all(not t["closes"] and t["errors"] == 0 for t in state.values()), state
        assert len(observed.websockets) == 2
        await page.evaluate("mux.send('/rooms/a', 'after')")
        await wait_message(page, "/rooms/a", "a> after")
        # Once its guard returns, the server sees the first socket's close: /rooms/a's leave
        # there has the client's code.
        deadline = time.monotonic() + 8
        while "leave /rooms/a 4408" not in (events := (await stats(http, port))["events"]):
            assert time.monotonic() < deadline, events
            await asyncio.sleep(0.1)
        assert events.count("stuck guard") == 2
        await open_sockets(http, port, 1)
    assert not observed.page_errors, observed.page_errors
