"""Presence in the browser client, in real headless Chromium, across two uvicorn workers on Redis.

Two worker processes (``tests/apps/presence_page.py``: the presence app plus a page that loads
``/wsroute/multiplex.js``) share one Redis, with a channel prefix of this run's own. Ann opens
the room in a tab served by worker A, then in a second tab of the same browser (same context)
served by worker B; Bob, in a browser context of his own, joins on worker B. What the JS client
exposes must show everyone, whichever worker they are on:

* Ann's first tab's ``presence`` ends up as exactly two entries, Ann with both her clients (info
  pids of both workers) and Bob with one; each tab's ``clientId`` is its own and is listed;
  its ``presence`` events include Bob's join, which crossed Redis (Bob is on the other worker);
* ``GET /presence`` on either worker lists the same three client ids, ``GET /stats`` counts
  3 clients and 2 users;
* Bob changes his info (``Channel.update_presence``, through the app's ``status:`` message):
  Ann's first tab gets him as a join with the new info, in his place in the list;
* Bob closes his tab: Ann's tab gets a ``presence`` event whose leaves hold Bob's client, and
  lists Ann only; Ann closes her second tab: Ann stays, one entry with one client.

Chromium is Debian's (``/usr/bin/chromium``) driven by the ``playwright`` package; never run
``playwright install``. Redis is the shared one at 127.0.0.1:6379: missing, the test skips,
except under ``CI=true`` where it fails. No console error or page error is tolerated, and no
request may leave 127.0.0.1.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from support.browser import ARTIFACTS, Watched, watch
from support.processes import HOST, ServerProcess, free_port
from support.redis_server import require_redis

pytestmark = pytest.mark.browser

APP = "apps.presence_page:app"
TTL = 2.0  # presence_ttl: nothing here waits for it (every leave below is a clean close)
WAIT_MS = 10_000  # the bound of every wait in the browser

playwright_api = pytest.importorskip("playwright.async_api")


@pytest.fixture
def broker_url() -> str:
    prefix = f"wsroute-test-{uuid.uuid4().hex[:12]}:"
    return f"{require_redis()}?channel_prefix={prefix}&presence_ttl={TTL}"


@pytest.fixture
def workers(
    broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two uvicorn worker processes of the page app on the same Redis, each on its own port."""
    monkeypatch.setenv("WSROUTE_TEST_BROKER", broker_url)
    with tempfile.TemporaryFile() as log_a, tempfile.TemporaryFile() as log_b:
        a, b = ServerProcess(APP, free_port(), log_a), ServerProcess(APP, free_port(), log_b)
        try:
            a.start()
            b.start()
            yield a, b
        finally:
            a.stop()
            b.stop()


async def get_json(http: httpx.AsyncClient, port: int, path: str, **params: str) -> Any:
    response = await http.get(f"http://{HOST}:{port}{path}", params=params)
    response.raise_for_status()
    return response.json()


async def open_tab(context: Any, tabs: dict[str, Watched], name: str, port: int, topic: str) -> Any:
    """A new page of `context` on the worker at `port`, its topic open and its presence list in."""
    page = await context.new_page()
    tabs[name] = watch(page)
    await page.goto(f"http://{HOST}:{port}/", timeout=WAIT_MS)
    await page.wait_for_function("window.presReady === true", timeout=WAIT_MS)
    assert await page.evaluate("(topic) => pres.open(topic)", topic) == 0  # CONNECTING
    await wait_for(page, "pres.events.length > 0 && pres.ws.clientId !== null", f"{name}'s presence list")
    # The tab is a member once its join handler returns, which may come after the state that
    # follows the subscription's OK: it then shows up by a join of its own.
    await wait_for(
        page,
        "pres.ws.presence.some((e) => e.clients.some((c) => c.clientId === pres.ws.clientId))",
        f"{name} to list itself",
    )
    return page


async def wait_for(page: Any, expression: str, what: str, arg: Any = None) -> None:
    """Wait (at most WAIT_MS) until `expression`, a function of `arg`, holds on `page`."""
    try:
        await page.wait_for_function(f"(arg) => {expression}", arg=arg, timeout=WAIT_MS)
    except playwright_api.TimeoutError:
        state = await page.evaluate("pres.state()")
        raise AssertionError(f"timed out waiting for {what}; the page's client exposes: {state}") from None


async def state(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("pres.state()")
    return result


def listing(presence: list[dict[str, Any]]) -> list[tuple[str | None, list[tuple[str, Any]]]]:
    """A `presence` list as (user, [(clientId, pid), …]) in the client's own order."""
    return [(e["user"], [(c["clientId"], c["info"]["pid"]) for c in e["clients"]]) for e in presence]


async def test_presence_of_two_workers_reaches_the_browser_client(
    browser: Any, workers: tuple[ServerProcess, ServerProcess]
) -> None:
    started = time.monotonic()
    a, b = workers
    room = f"/rooms/r{uuid.uuid4().hex[:10]}"
    tabs: dict[str, Watched] = {}
    requests: list[str] = []
    ann_context = await browser.new_context()
    bob_context = await browser.new_context()
    for context in (ann_context, bob_context):
        context.on("request", lambda request: requests.append(request.url))
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
            pid_a = int(await get_json(http, a.port, "/health"))
            pid_b = int(await get_json(http, b.port, "/health"))
            assert pid_a != pid_b

            # Ann's first tab, on worker A: alone in the room, and she sees herself.
            ann1 = await open_tab(ann_context, tabs, "ann tab 1", a.port, f"{room}?user=ann")
            first = await state(ann1)
            ann1_id = first["clientId"]
            assert first["readyState"] == 1 and first["opens"] == 1
            assert listing(first["presence"]) == [("ann", [(ann1_id, pid_a)])]
            # The subscription's state (empty, or this tab), then maybe this tab's own join.
            assert 1 <= len(first["events"]) <= 2, first["events"]
            assert [j["clientId"] for e in first["events"] for j in e["joins"]] == [ann1_id]
            assert all(e["leaves"] == [] for e in first["events"])

            # Ann's second tab (same browser context), on worker B; then Bob on worker B.
            ann2 = await open_tab(ann_context, tabs, "ann tab 2", b.port, f"{room}?user=ann")
            ann2_id = (await state(ann2))["clientId"]
            bob = await open_tab(bob_context, tabs, "bob", b.port, f"{room}?user=bob")
            bob_id = (await state(bob))["clientId"]
            assert len({ann1_id, ann2_id, bob_id}) == 3, (ann1_id, ann2_id, bob_id)

            # Every tab, whichever worker serves it, comes to list the same members: Ann with
            # her two clients and Bob with one. (Ann's first tab saw them arrive in this order:
            # its list keeps the order of first appearance.)
            expected = [("ann", [(ann1_id, pid_a), (ann2_id, pid_b)]), ("bob", [(bob_id, pid_b)])]
            for page, name in ((ann1, "ann tab 1"), (ann2, "ann tab 2"), (bob, "bob")):
                await wait_for(
                    page,
                    """pres.ws.presence.length === 2 && pres.ws.presence.map((e) =>
                        `${e.user}:${e.clients.length}`).sort().join(",") === "ann:2,bob:1" """,
                    f"{name} to list ann (2 clients) and bob (1)",
                )
                now = await state(page)
                got = sorted((u, sorted(c)) for u, c in listing(now["presence"]))
                assert got == sorted((u, sorted(c)) for u, c in expected), name
                assert now["frozen"] and now["sameArray"], name
            seen = await state(ann1)
            assert listing(seen["presence"]) == expected
            ann_clients = [c["clientId"] for c in seen["presence"][0]["clients"]]
            assert ann1_id in ann_clients and ann2_id in ann_clients
            assert seen["clientId"] == ann1_id  # a tab's clientId is its own, listed under its user

            # The joins reached worker A's tab as presence events: from worker B, through Redis.
            joins = [j for e in seen["events"] for j in e["joins"]]
            assert {"clientId": bob_id, "user": "bob", "info": {"pid": pid_b}} in joins
            assert {"clientId": ann2_id, "user": "ann", "info": {"pid": pid_b}} in joins
            assert all(e["leaves"] == [] for e in seen["events"])
            assert seen["handlerCalls"] == len(seen["events"])  # onpresence and the listener alike

            # The server's view, from either worker.
            for port in (a.port, b.port):
                members = await get_json(http, port, "/presence", topic=room)
                assert sorted(m["client_id"] for m in members) == sorted([ann1_id, ann2_id, bob_id])
                by_id = {m["client_id"]: (m["user"], m["info"]["pid"]) for m in members}
                assert by_id == {ann1_id: ("ann", pid_a), ann2_id: ("ann", pid_b), bob_id: ("bob", pid_b)}
                assert await get_json(http, port, "/stats", topic=room) == {"clients": 3, "users": 2}

            ARTIFACTS.mkdir(exist_ok=True)
            await ann1.screenshot(path=str(ARTIFACTS / "presence.png"), full_page=True)

            # Bob changes what he shows (`Channel.update_presence`, on worker B): Ann's first
            # tab, on worker A, gets him as a join again, with the new info, in his place.
            events_before = len(seen["events"])
            await bob.evaluate("pres.ws.send('status:away')")
            await wait_for(
                ann1,
                """pres.events.slice(arg[0]).some((e) => e.joins.some((j) =>
                    j.clientId === arg[1] && j.info.status === "away"))""",
                "bob's new info in ann's first tab",
                [events_before, bob_id],
            )
            seen = await state(ann1)
            assert listing(seen["presence"]) == expected  # the same clients, in the same order
            assert seen["presence"][1]["clients"][0]["info"] == {"pid": pid_b, "status": "away"}
            assert all(e["leaves"] == [] for e in seen["events"][events_before:])

            # Bob closes his tab: Ann's first tab is told he left, and lists Ann alone.
            events_before = len(seen["events"])
            await bob.close()
            await wait_for(
                ann1,
                "pres.events.slice(arg[0]).some((e) => e.leaves.some((l) => l.clientId === arg[1]))",
                "bob's leave in ann's first tab",
                [events_before, bob_id],
            )
            after_bob = await state(ann1)
            [leave_event] = [
                e
                for e in after_bob["events"][events_before:]
                if any(left["clientId"] == bob_id for left in e["leaves"])
            ]
            away = {"pid": pid_b, "status": "away"}  # as he showed himself last
            assert leave_event["leaves"] == [{"clientId": bob_id, "user": "bob", "info": away}]
            assert leave_event["joins"] == []
            assert listing(leave_event["presence"]) == [("ann", [(ann1_id, pid_a), (ann2_id, pid_b)])]
            assert listing(after_bob["presence"]) == [("ann", [(ann1_id, pid_a), (ann2_id, pid_b)])]

            # Ann closes her second tab: she stays, one entry with one client (this tab).
            events_before = len(after_bob["events"])
            await ann2.close()
            await wait_for(
                ann1,
                "pres.events.slice(arg[0]).some((e) => e.leaves.some((l) => l.clientId === arg[1]))",
                "the second tab's leave in ann's first tab",
                [events_before, ann2_id],
            )
            final = await state(ann1)
            assert listing(final["presence"]) == [("ann", [(ann1_id, pid_a)])]
            assert final["clientId"] == ann1_id and final["readyState"] == 1
            assert final["closes"] == [] and final["errors"] == 0 and final["opens"] == 1
            for port in (a.port, b.port):
                assert await get_json(http, port, "/stats", topic=room) == {"clients": 1, "users": 1}
    finally:
        await ann_context.close()
        await bob_context.close()

    assert {name: (w.page_errors, w.console_errors) for name, w in tabs.items()} == {
        name: ([], []) for name in ("ann tab 1", "ann tab 2", "bob")
    }
    sockets = [url for w in tabs.values() for url in w.sockets]
    outside = [url for url in requests + sockets if urlsplit(url).hostname != HOST]
    assert outside == [], f"requests outside {HOST}: {outside}"
    for worker in (a, b):
        output = worker.output()
        assert "Traceback" not in output and "ERROR" not in output, output
    elapsed = time.monotonic() - started
    print(f"\npresence across two workers, seen in Chromium: {elapsed:.2f}s")
