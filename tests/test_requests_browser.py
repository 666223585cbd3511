"""`MultiplexWebSocket.request()` in real headless Chromium, against a uvicorn subprocess.

A page (``tests/apps/requests_page.py``) loads ``/wsroute/multiplex.js`` and calls
``request()`` on its topics; every frame of the one physical socket is recorded through
Playwright, so a failure shows what went over the wire. Proven here:

* pipelining: 100 requests in flight at once on one topic (and 100 more, interleaved, on a
  second topic whose request ids are the same numbers) each resolve with their own answer;
* an error reply (invalid payload 1007, a bug 1011, a handler's ``WebSocketException``) rejects
  with ``kind == "error"`` and keeps the topic and the socket open;
* a timeout rejects with ``kind == "timeout"``, and the late reply is ignored;
* closing the topic, or losing the connection (server restarted, or killed), rejects the
  request in flight with ``kind == "closed"``; the client reconnects and requests work again;
* a handler returning None acknowledges: ``request()`` resolves with ``""``.

Chromium is Debian's (``/usr/bin/chromium``) driven by the ``playwright`` package; never run
``playwright install``. Only console errors from refused connections while the server is down
are tolerated (see `TOLERATED_CONSOLE_ERROR`); page errors never are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
SEP = "\u00b7"
OPEN, CLOSED = 1, 3
# Chromium logs a failed WebSocket handshake as a console error; while the server is down that
# is the expected result of each reconnection attempt (and nothing else is).
TOLERATED_CONSOLE_ERROR = re.compile(
    r"^WebSocket connection to 'ws://127\.0\.0\.1:\d+/(slow|echo)"
    r"\?rocket-multiplex=meta,positions,presence' failed: "
    r".*net::ERR_CONNECTION_REFUSED\s*$"
)
DOWN_PHASES = ("restart", "kill")

playwright_api = pytest.importorskip("playwright.async_api")


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ServerProcess]:
    """One server for the tests that never stop it."""
    with server_process("apps.requests_page:app") as process:
        yield process


@pytest.fixture
def own_server() -> Iterator[ServerProcess]:
    """A server of the test's own, which it may stop and start again."""
    with server_process("apps.requests_page:app") as process:
        yield process


@dataclass
class Observed:
    """Everything the browser did, with the test phase it happened in."""

    phase: str = "setup"
    requests: list[str] = field(default_factory=list)
    websockets: list[tuple[float, str]] = field(default_factory=list)
    frames: list[tuple[int, str, str]] = field(default_factory=list)  # (socket index, "sent"/"recv", text)
    console: list[tuple[str, str, str]] = field(default_factory=list)  # (phase, type, text)
    page_errors: list[str] = field(default_factory=list)

    def sent(self) -> list[str]:
        return [text for _, way, text in self.frames if way == "sent"]

    def received(self) -> list[str]:
        return [text for _, way, text in self.frames if way == "recv"]

    def wire(self, last: int = 40) -> str:
        return "\n".join(f"  #{index} {way}: {text!r}" for index, way, text in self.frames[-last:])


def watch(page: Any, observed: Observed) -> None:
    def on_websocket(ws: Any) -> None:
        index = len(observed.websockets)
        observed.websockets.append((time.monotonic(), ws.url))

        def frame(way: str, payload: str | bytes) -> None:
            text = payload if isinstance(payload, str) else f"<{len(payload)} bytes> {payload!r}"
            observed.frames.append((index, way, text))

        ws.on("framesent", lambda payload: frame("sent", payload))
        ws.on("framereceived", lambda payload: frame("recv", payload))

    page.on("console", lambda msg: observed.console.append((observed.phase, msg.type, msg.text)))
    page.on("pageerror", lambda error: observed.page_errors.append(str(error)))
    page.on("websocket", on_websocket)


@contextlib.asynccontextmanager
async def opened_page(browser: Any, server: ServerProcess) -> Any:
    """A fresh context and page on the server's `/`; yields (page, observed), then checks that
    the page raised nothing, logged only tolerated errors and talked to 127.0.0.1 only."""
    observed = Observed()
    context = await browser.new_context()
    context.on("request", lambda request: observed.requests.append(request.url))
    try:
        page = await context.new_page()
        watch(page, observed)
        await page.goto(f"http://{HOST}:{server.port}/", timeout=10_000)
        await page.wait_for_function("window.reqReady === true", timeout=5000)
        yield page, observed
    finally:
        await context.close()
    assert observed.page_errors == [], observed.page_errors
    unexpected = [
        (phase, kind, text)
        for phase, kind, text in observed.console
        if kind == "error" and not (phase in DOWN_PHASES and TOLERATED_CONSOLE_ERROR.match(text))
    ]
    assert unexpected == [], f"console errors: {unexpected}"
    urls = observed.requests + [url for _, url in observed.websockets]
    outside = [url for url in urls if urlsplit(url).hostname != HOST]
    assert outside == [], f"requests outside {HOST}: {outside}"


async def state(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("req.state()")
    return result


async def stats(http: httpx.AsyncClient, port: int) -> dict[str, Any]:
    response = await http.get(f"http://{HOST}:{port}/stats")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


async def open_sockets(port: int, expected: int) -> dict[str, Any]:
    """Poll `/stats` until exactly `expected` physical sockets are open (at most 5 s)."""
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        deadline = time.monotonic() + 5
        while True:
            current = await stats(http, port)
            if current["open"] == expected:
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {expected} open sockets, server reports {current}")
            await asyncio.sleep(0.05)


async def open_topics(
    page: Any, observed: Observed, paths: list[str], opens: int = 1, timeout: float = 5000
) -> None:
    """Open `paths` (if `opens` is 1) and wait until each is OPEN with `opens` open events."""
    if opens == 1:
        for path in paths:
            assert await page.evaluate("(p) => req.open(p)", path) == 0  # CONNECTING
    try:
        await page.wait_for_function(
            """([paths, opens]) => paths.every((p) =>
                req.topics[p]?.ws.readyState === 1 && req.topics[p].opens === opens)""",
            arg=[paths, opens],
            timeout=timeout,
        )
    except playwright_api.TimeoutError:
        page_state = await state(page)
        raise AssertionError(
            f"topics {paths} not all open ({opens} opens each): {page_state}\nframes:\n{observed.wire()}"
        ) from None


async def request(page: Any, path: str, data: str, timeout: int | None = 5000) -> str:
    """Start `request(data, { timeout })` on `path`; the key of its record in `req.results`."""
    key: str = await page.evaluate("([p, d, t]) => req.request(p, d, t)", [path, data, timeout])
    return key


async def settled(page: Any, observed: Observed, key: str, within: float = 5000) -> dict[str, Any]:
    """Wait (at most `within` ms) until request `key` has settled; its record."""
    try:
        await page.wait_for_function("(k) => req.results[k].state !== 'pending'", arg=key, timeout=within)
    except playwright_api.TimeoutError:
        record = await page.evaluate("(k) => req.results[k]", key)
        raise AssertionError(
            f"request {key} still pending after {within} ms: {record}\npage: {await state(page)}\n"
            f"frames:\n{observed.wire()}"
        ) from None
    record: dict[str, Any] = await page.evaluate("(k) => req.results[k]", key)
    return record


async def resolves(page: Any, observed: Observed, key: str, within: float = 5000) -> str:
    """Wait for request `key`; it must have resolved (once): its value."""
    record = await settled(page, observed, key, within)
    assert record["state"] == "resolved" and record["settles"] == 1, (
        f"request {key} {record}\nframes:\n{observed.wire()}"
    )
    value: str = record["value"]
    return value


async def rejects(page: Any, observed: Observed, key: str, within: float = 5000) -> dict[str, Any]:
    """Wait for request `key`; it must have rejected (once) with a RequestError: the error."""
    record = await settled(page, observed, key, within)
    assert record["state"] == "rejected" and record["settles"] == 1, (
        f"request {key} {record}\nframes:\n{observed.wire()}"
    )
    error: dict[str, Any] = record["error"]
    assert error["isRequestError"] and error["name"] == "RequestError", error
    error["ms"] = record["ms"]
    return error


async def wait_frame(observed: Observed, way: str, text: str, within: float = 5.0) -> None:
    """Wait until the page's socket has sent (`way` "sent") or received ("recv") `text`."""
    deadline = time.monotonic() + within
    while not any(w == way and t == text for _, w, t in observed.frames):
        if time.monotonic() > deadline:
            raise AssertionError(f"no frame {way} {text!r} within {within}s; frames:\n{observed.wire()}")
        await asyncio.sleep(0.02)


async def assert_one_socket(page: Any, observed: Observed, port: int) -> None:
    """The page's topics share one open physical socket, and the server sees exactly one."""
    assert await page.evaluate("req.sockets()") == 1
    topics = await state(page)
    for path, topic in topics.items():
        if topic["readyState"] != CLOSED:
            assert (topic["socketState"], topic["physical"]) == ("open", 1), (path, topic)
    server_view = await open_sockets(port, 1)
    [physical] = server_view["sockets"]
    assert physical["subprotocol"] == "rocket-multiplex"
    # The client asks every topic for positions; these have no history: only meta is granted.
    assert physical["query"] == "rocket-multiplex=meta,positions,presence", physical


def assert_clean_log(server: ServerProcess, since: int) -> None:
    output = server.output(since)
    assert "Traceback" not in output and "ERROR" not in output, output


def frames_for(observed: Observed, way: str, topic: str) -> list[tuple[dict[str, str], str]]:
    """Data frames of `topic` in direction `way`: (metadata items, payload) each."""
    out = []
    prefix = topic + SEP
    for text in observed.sent() if way == "sent" else observed.received():
        if text.startswith(prefix):
            meta, _, payload = text[len(prefix) :].partition(SEP)
            items = dict(item.partition("=")[::2] for item in meta.split(",") if item)
            out.append((items, payload))
    return out


# --- 1 + 6: pipelining, acknowledgement ---------------------------------------------------------


async def test_100_pipelined_requests_each_resolve_with_their_own_answer(
    browser: Any, shared_server: ServerProcess
) -> None:
    port = shared_server.port
    mark = shared_server.mark()
    async with opened_page(browser, shared_server) as (page, observed):
        observed.phase = "open"
        # Requests made while CONNECTING are buffered and sent once the topic is open.
        assert await page.evaluate("req.open('/echo')") == 0
        assert await page.evaluate("req.open('/reverse')") == 0
        early = [await request(page, "/reverse", f"early {i}") for i in range(10)]
        await page.wait_for_function(
            "['/echo', '/reverse'].every((p) => req.topics[p].ws.readyState === 1)", timeout=5000
        )
        for i, key in enumerate(early):
            assert await resolves(page, observed, key) == f"early {i}"[::-1]
        [(_, url)] = observed.websockets
        assert urlsplit(url).query == "rocket-multiplex=meta,positions,presence", url
        await assert_one_socket(page, observed, port)

        # 100 on /echo (ids 1..100) and 100 on /reverse (ids 11..110) interleaved, all sent in
        # one task: 200 requests in flight on one socket, many with the same id on both
        # topics. Payloads hold the separator and text that looks like metadata.
        observed.phase = "pipelining"
        sent_before = len(observed.sent())
        pairs: list[tuple[str, str]] = []
        expected: list[Any] = []
        for n in range(100):
            text = f"#{n} {SEP}reply={n + 1}{SEP} ünïcode ✓"
            pairs.append(("/echo", json.dumps({"n": n, "text": text})))
            expected.append({"n": n, "echo": text})
            pairs.append(("/reverse", f"r{n}{SEP}id={n}"))
            expected.append(f"r{n}{SEP}id={n}"[::-1])
        started = time.monotonic()
        outcome = await asyncio.wait_for(
            page.evaluate("([pairs]) => req.requestMany(pairs, 10000)", [pairs]), 20
        )
        elapsed = time.monotonic() - started
        assert outcome["pendingAfterSend"] == 200  # all in flight at once
        records = outcome["records"]
        wrong = []
        for (path, data), want, record in zip(pairs, expected, records, strict=True):
            if record["state"] != "resolved" or record["settles"] != 1:
                wrong.append((path, data, record))
                continue
            got = json.loads(record["value"]) if path == "/echo" else record["value"]
            if got != want:
                wrong.append((path, data, record))
        assert wrong == [], f"{len(wrong)} wrong answers, first: {wrong[:5]}\nframes:\n{observed.wire()}"
        print(f"\n200 pipelined requests answered in {elapsed:.2f}s")

        # On the wire: 100 requests on each topic with distinct ids, at least 100 of them sent
        # before the first reply came back (Chromium may still be writing when it does).
        new_frames = observed.frames[len(observed.frames) - 400 :]
        first_reply = next(i for i, (_, way, _) in enumerate(new_frames) if way == "recv")
        assert len(observed.sent()) - sent_before == 200
        assert first_reply >= 100, f"a reply came after only {first_reply} requests were sent"
        echo_ids = [items["id"] for items, _ in frames_for(observed, "sent", "/echo")]
        reverse_ids = [items["id"] for items, _ in frames_for(observed, "sent", "/reverse")]
        assert echo_ids == [str(i) for i in range(1, 101)]
        assert reverse_ids == [str(i) for i in range(1, 111)]
        echo_replies = frames_for(observed, "recv", "/echo")
        assert sorted(int(items["reply"]) for items, _ in echo_replies) == list(range(1, 101))
        # Replies are never message events.
        topics = await state(page)
        assert topics["/echo"]["messages"] == [] and topics["/reverse"]["messages"] == [], topics
        assert await page.evaluate("req.settlements") == 210
        await assert_one_socket(page, observed, port)
        assert len(observed.websockets) == 1
    assert_clean_log(shared_server, mark)


async def test_a_none_returning_handler_acknowledges_with_an_empty_string(
    browser: Any, shared_server: ServerProcess
) -> None:
    mark = shared_server.mark()
    async with opened_page(browser, shared_server) as (page, observed):
        await open_topics(page, observed, ["/ack"])
        assert await resolves(page, observed, await request(page, "/ack", "hello")) == ""
        assert await resolves(page, observed, await request(page, "/ack", "")) == ""
        await wait_frame(observed, "recv", f"/ack{SEP}reply=2{SEP}")
        assert frames_for(observed, "recv", "/ack") == [({"reply": "1"}, ""), ({"reply": "2"}, "")]
        topics = await state(page)
        assert topics["/ack"]["messages"] == [] and topics["/ack"]["readyState"] == OPEN, topics
        await assert_one_socket(page, observed, shared_server.port)
    assert_clean_log(shared_server, mark)


# --- 2: error replies ---------------------------------------------------------------------------


async def test_an_error_reply_rejects_and_keeps_the_topic_and_the_socket(
    browser: Any, shared_server: ServerProcess
) -> None:
    port = shared_server.port
    mark = shared_server.mark()
    async with opened_page(browser, shared_server) as (page, observed):
        await open_topics(page, observed, ["/items"])
        seen: dict[str, dict[str, Any]] = {}
        cases = [
            ("not json", "not JSON", 1007, None),
            ("wrong type", '{"id": "seven"}', 1007, None),
            ("bug", '{"id": 0}', 1011, "Internal Error"),
            ("raised", '{"id": -1}', 4002, "no such item"),
        ]
        for n, (name, data, code, reason) in enumerate(cases, start=1):
            observed.phase = name
            error = await rejects(page, observed, await request(page, "/items", data))
            seen[name] = error
            assert (error["kind"], error["code"]) == ("error", code), (name, error, observed.wire(4))
            if reason is not None:
                assert error["reason"] == reason, (name, error)
            else:
                assert error["reason"], (name, error)  # the validation error, in words
            # The same topic answers the next request; it never closed.
            answer = await resolves(page, observed, await request(page, "/items", json.dumps({"id": n})))
            assert json.loads(answer) == {"id": n, "name": f"item {n}"}
            topics = await state(page)
            assert topics["/items"]["readyState"] == OPEN, (name, topics)
            assert topics["/items"]["closes"] == [] and topics["/items"]["errors"] == 0, (name, topics)
            await assert_one_socket(page, observed, port)
        assert len(observed.websockets) == 1
        # The error replies on the wire.
        errors = [
            (items, payload) for items, payload in frames_for(observed, "recv", "/items") if "error" in items
        ]
        assert [(items["reply"], items["error"]) for items, _ in errors] == [
            ("1", "1007"),
            ("3", "1007"),
            ("5", "1011"),
            ("7", "4002"),
        ], errors
        assert [payload for _, payload in errors][2:] == ["Internal Error", "no such item"]
        topics = await state(page)
        assert topics["/items"]["messages"] == [], topics
        print("\n1007 reasons: " + " | ".join(repr(seen[n]["reason"]) for n in ("not json", "wrong type")))
    # The bug, and only the bug, is logged (with its traceback).
    output = shared_server.output(mark)
    assert output.count("Traceback") == 1 and "RuntimeError: a bug in the items handler" in output, output
    assert "4002" not in output and "no such item" not in output, output


# --- 3: timeout ---------------------------------------------------------------------------------


async def test_a_timeout_rejects_and_the_late_reply_is_ignored(
    browser: Any, shared_server: ServerProcess
) -> None:
    mark = shared_server.mark()
    async with opened_page(browser, shared_server) as (page, observed):
        await open_topics(page, observed, ["/slow"])
        late = await request(page, "/slow", "2000:a", timeout=300)
        error = await rejects(page, observed, late, within=3000)
        assert error["kind"] == "timeout" and error["code"] is None, error
        assert 250 <= error["ms"] < 1500, error
        # The next request gets its own answer, not the late one (which comes first if the
        # topic's handler runs one message at a time).
        following = await request(page, "/slow", "0:b", timeout=5000)
        assert await resolves(page, observed, following, within=5000) == "slept b"
        await wait_frame(observed, "recv", f"/slow{SEP}reply=1{SEP}slept a")  # it did come
        await asyncio.sleep(0.3)
        record = await page.evaluate("(k) => req.results[k]", late)
        assert record["state"] == "rejected" and record["settles"] == 1, record
        assert record["error"]["kind"] == "timeout", record
        assert await page.evaluate("req.settlements") == 2
        topics = await state(page)
        assert topics["/slow"]["messages"] == [], topics  # no message event for the late reply
        assert topics["/slow"]["readyState"] == OPEN, topics
        replies = [payload for _, payload in frames_for(observed, "recv", "/slow")]
        print(f"\n/slow replies in arrival order: {replies}")
        await assert_one_socket(page, observed, shared_server.port)
    assert_clean_log(shared_server, mark)


# --- 4: close during a request ------------------------------------------------------------------


async def test_closing_the_topic_rejects_the_request_in_flight(
    browser: Any, shared_server: ServerProcess
) -> None:
    port = shared_server.port
    mark = shared_server.mark()
    async with opened_page(browser, shared_server) as (page, observed):
        await open_topics(page, observed, ["/echo", "/slow"])
        inflight = await request(page, "/slow", "2000:c", timeout=5000)
        await wait_frame(observed, "sent", f"/slow{SEP}id=1{SEP}2000:c")
        closed_at = time.monotonic()
        await page.evaluate("req.close('/slow')")
        error = await rejects(page, observed, inflight, within=1000)
        assert error["kind"] == "closed" and error["code"] is None, error
        # A request on a CLOSING topic rejects at once.
        error = await rejects(page, observed, await request(page, "/slow", "0:x"), within=1000)
        assert error["kind"] == "closed", error
        await page.wait_for_function("req.topics['/slow'].ws.readyState === 3", timeout=5000)
        close_took = time.monotonic() - closed_at
        old = (await state(page))["/slow"]
        assert old["closes"] == [{"code": 1000, "reason": "", "wasClean": True}], old
        assert old["messages"] == [], old
        # The server may still answer the old request until its OK UNSUBSCRIBE (the topic is
        # subscribed on its side until then), never after it.
        received = observed.received()
        ok = received.index(f"{SEP}OK{SEP}UNSUBSCRIBE{SEP}/slow")
        stale = [i for i, text in enumerate(received) if text == f"/slow{SEP}reply=1{SEP}slept c"]
        assert all(i < ok for i in stale), f"a reply after OK UNSUBSCRIBE:\n{observed.wire()}"
        print(
            f"\nclose() -> close event: {close_took:.2f}s; old request's reply "
            f"{'sent before the OK UNSUBSCRIBE' if stale else 'never sent'}"
        )

        # Subscribe again at once: the new subscription numbers its requests from 1 too, and
        # its request 1 is in flight past the time the old handler's 2 s are up: the old
        # request 1's reply must not answer it.
        observed.phase = "reopen"
        assert await page.evaluate("req.open('/slow')") == 0
        await page.wait_for_function("req.topics['/slow'].ws.readyState === 1", timeout=5000)
        again = await request(page, "/slow", "2500:d", timeout=6000)
        assert await resolves(page, observed, again, within=6000) == "slept d"
        answer = await resolves(page, observed, await request(page, "/echo", '{"n": 5, "text": "still"}'))
        assert json.loads(answer) == {"n": 5, "echo": "still"}
        assert await page.evaluate("req.settlements") == 4
        await assert_one_socket(page, observed, port)
        assert len(observed.websockets) == 1
    assert_clean_log(shared_server, mark)


# --- 5: reconnect during a request --------------------------------------------------------------


async def test_a_lost_connection_rejects_the_request_in_flight_and_requests_work_after_reconnect(
    browser: Any, own_server: ServerProcess
) -> None:
    server = own_server
    port = server.port
    started = time.monotonic()
    async with opened_page(browser, server) as (page, observed):
        await open_topics(page, observed, ["/slow", "/echo"])
        await assert_one_socket(page, observed, port)
        async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
            before = await stats(http, port)

        for round_, (phase, stop, tag) in enumerate(
            [("restart", server.stop, "e"), ("kill", server.kill, "g")], start=2
        ):
            inflight = await request(page, "/slow", f"2000:{tag}", timeout=10_000)
            await wait_frame(observed, "sent", f"/slow{SEP}id={(round_ - 2) * 2 + 1}{SEP}2000:{tag}")
            observed.phase = phase
            sockets_before = len(observed.websockets)
            down = time.monotonic()
            # In a thread: the loop keeps serving Playwright's events meanwhile.
            await asyncio.to_thread(stop)
            error = await rejects(page, observed, inflight, within=5000)
            assert error["kind"] == "closed" and error["code"] is None, (phase, error)
            assert error["ms"] < 10_000, error
            # A request made while the connection is lost waits for the reconnect.
            buffered = await request(
                page, "/echo", json.dumps({"n": round_, "text": f"while {phase}"}), 20_000
            )
            await page.wait_for_function(
                "['/slow', '/echo'].every((p) => req.topics[p].ws.readyState === 0)", timeout=5000
            )
            await asyncio.sleep(1.0)
            await asyncio.to_thread(server.start)
            back = time.monotonic()
            # Backoff is full jitter capped at 10 s: the next attempt may be up to 10 s away.
            await open_topics(page, observed, ["/slow", "/echo"], opens=round_, timeout=15_000)
            reopened = time.monotonic()
            attempts = len(observed.websockets) - sockets_before
            print(
                f"\n{phase}: request rejected {error['ms']:.0f} ms after it was sent "
                f"({error['reason']!r}); server down {back - down:.2f}s; {attempts} connection "
                f"attempts; topics open {reopened - back:.2f}s after the server was back"
            )
            observed.phase = f"after {phase}"
            answer = await resolves(page, observed, buffered, within=5000)
            assert json.loads(answer) == {"n": round_, "echo": f"while {phase}"}
            after = await resolves(page, observed, await request(page, "/slow", f"0:{tag} again"))
            assert after == f"slept {tag} again"
            topics = await state(page)
            for path in ("/slow", "/echo"):
                assert topics[path]["closes"] == [] and topics[path]["errors"] == 0, topics
                assert topics[path]["messages"] == [], topics
            await assert_one_socket(page, observed, port)
            async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
                now = await stats(http, port)
            assert now["accepted"] == 1 and now["pid"] != before["pid"], now
            before = now
        # Each request settled exactly once, whatever came late.
        records = await page.evaluate("Object.values(req.results)")
        assert all(r["settles"] == 1 for r in records), records
    output = server.output()
    assert "Traceback" not in output and "ERROR" not in output, output
    assert time.monotonic() - started < 60
