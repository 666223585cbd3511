"""The chat example's page in real headless Chromium (Debian's, driven by playwright).

Two browser contexts are two users: they sign in, enter the same room, chat, see each other
in the member list; one watches a second room at the same time over the same single socket;
a message over the limit shows an error and the socket stays open; one leaves and the other
sees it, and sees them listed offline, as does a third user who arrives later; a user whose
page is hidden is shown away. The second
user's window is 375 px wide. Other tests: the page says why a stored token is refused, and
it reconnects by itself after a server restart (and signs out, saying why, when the
restarted server no longer accepts the token); the footer's ``/docs`` shows the HTTP API
with no request leaving 127.0.0.1.

Chromium is ``/usr/bin/chromium``: never ``playwright install``. Missing, the tests skip
(``apt-get install chromium``), except under ``CI=true`` where they fail. Screenshots go to
``test-artifacts/`` (artifacts, not assertions).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from support import chat_page
from support.browser import ARTIFACTS, watch
from support.chat import ADMIN, SECRET, ChatServer, chat_env
from support.chat_page import listed, log, members, memory_chat, say, set_hidden, sign_in
from support.proxy import CuttableProxy

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

# A first visit asks /api/session and gets 401 (not signed in): Chromium logs that load.
EXPECTED_401 = re.compile(r"^Failed to load resource: the server responded with a status of 401")
# While the server is down (restart test), connection attempts fail; Chromium logs each one.
WHILE_DOWN = re.compile(
    r"^(WebSocket connection to 'ws://127\.0\.0\.1:\d+/rooms/[a-z0-9-]+(\?rocket-multiplex=[^']*)?' failed"
    r"|Failed to load resource: net::ERR_CONNECTION_REFUSED)"
)


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    with memory_chat(tmp_path_factory, "chat-browser") as server:
        yield server


def room_name() -> str:
    return chat_page.room_name("b")


async def test_two_users_chat_watch_two_rooms_and_leave(browser: Any, chat: ChatServer) -> None:
    room, other = room_name(), room_name()
    ann_context = await browser.new_context(viewport={"width": 1100, "height": 720})
    bob_context = await browser.new_context(viewport={"width": 375, "height": 740})
    ann, bob = await ann_context.new_page(), await bob_context.new_page()
    ann_seen, bob_seen = watch(ann), watch(bob)

    await sign_in(ann, chat.http, room, "Ann")
    assert await ann.evaluate("document.activeElement.id") == "composer-text"  # ready to type
    await sign_in(bob, chat.http, room, "Bob")

    # Each sees both in the member list (the newcomer's presence reached the other).
    for page in (ann, bob):
        await expect(members(page)).to_have_count(2)
        await expect(members(page).filter(has_text="Ann")).to_have_count(1)
        await expect(members(page).filter(has_text="Bob")).to_have_count(1)
        await expect(page.get_by_role("heading", name="Members (2)")).to_be_visible()
    await expect(log(ann).get_by_text(f"Bob joined #{room}")).to_be_visible()
    # Bob's page is hidden (he switched tabs): Ann sees him away, then present once it shows.
    bob_line = members(ann).filter(has_text="Bob")
    await set_hidden(bob, True)
    await expect(bob_line).to_have_text(re.compile(r"^Bob #[0-9a-f]{4} away$"))
    await set_hidden(bob, False)
    await expect(bob_line).to_have_text(listed("Bob"))

    await say(ann, room, "Hello Bob!")
    await expect(log(bob).get_by_text("Hello Bob!")).to_be_visible()
    await say(bob, room, "Hi Ann, from a small screen", with_button=True)
    await expect(log(ann).get_by_text("Hi Ann, from a small screen")).to_be_visible()

    # Watching a second room at the same time: same socket, another topic.
    await ann.get_by_label("Join a room").fill(other)
    await ann.get_by_role("button", name="Join", exact=True).click()
    await expect(ann.get_by_role("heading", name=f"#{other}")).to_be_visible()
    await expect(log(ann).get_by_text(f"You joined #{other}")).to_be_visible()
    assert ann.url.endswith(f"/rooms/{other}")
    await say(bob, room, "Ann, are you there?")
    unread = ann.locator(f'.room-item[data-room="{room}"] .badge')
    await expect(unread).to_have_text("1")
    await expect(ann.get_by_role("button", name=f"#{room}, 1 unread")).to_be_visible()
    await ann.get_by_role("button", name=f"#{room}, 1 unread").click()
    await expect(log(ann).get_by_text("Ann, are you there?")).to_be_visible()
    await expect(unread).to_be_hidden()

    # The box stops at the limit it states, counted in characters as the server counts them
    # (an emoji is one): a longer paste is cut, and the page says so.
    box = ann.get_by_label(f"Message #{room}")
    alert = ann.locator("#composer-problem")
    counter = ann.locator("#composer-counter")
    await box.fill("😀" * 501)
    await expect(box).to_have_value("😀" * 500)
    await expect(counter).to_have_text("500 / 500 characters")
    await expect(alert).to_have_attribute("role", "alert")
    await expect(alert).to_contain_text("limited to 500 characters")
    await box.fill("x" * 501)
    await expect(box).to_have_value("x" * 500)
    await box.press("Enter")
    await expect(log(bob).get_by_text("x" * 500)).to_be_visible()
    # What the server refuses: it says why, the socket stays open.
    await say(ann, room, "   ")
    await expect(alert).to_contain_text("Type something first")
    await say(ann, room, "still here")
    await expect(log(bob).get_by_text("still here")).to_be_visible()
    await expect(alert).to_be_hidden()
    assert len(ann_seen.sockets) == 1, ann_seen.sockets  # two rooms, one socket, never reopened
    assert ann_seen.closed_sockets == []

    # Every form control has a label; status, log and errors are live regions.
    unlabelled = await ann.evaluate(
        """[...document.querySelectorAll('input, button')]
             .filter((el) => el.offsetParent !== null)
             .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim()))
             .map((el) => el.outerHTML)"""
    )
    assert unlabelled == []
    for role in ("status", "log"):
        await expect(ann.get_by_role(role)).to_have_count(1)
    # Sign-in, join and composer problems, and the notice of a removal by an admin.
    await expect(ann.locator("[role=alert]")).to_have_count(4)

    # The narrow window has no horizontal scrolling.
    assert await bob.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    ARTIFACTS.mkdir(exist_ok=True)
    await ann.screenshot(path=str(ARTIFACTS / "chat.png"))
    await bob.screenshot(path=str(ARTIFACTS / "chat-narrow.png"), full_page=True)

    # Bob leaves the room: Ann is told and her member list shrinks.
    await bob.get_by_role("button", name=f"Leave #{room}").click()
    await expect(log(ann).get_by_text(f"Bob left #{room}")).to_be_visible()
    await expect(members(ann)).to_have_count(1)
    await expect(members(ann)).to_have_text(listed("Ann (you)"))
    await expect(bob.get_by_role("heading", name="No room")).to_be_visible()
    await expect(bob.get_by_role("status")).to_have_text("Not in any room")
    # He is listed offline, last seen now (the time only: it is today).
    offline = ann.locator("#offline-list li")
    await expect(ann.get_by_role("heading", name="Offline (1)")).to_be_visible()
    await expect(offline).to_have_text([re.compile(r"^Bob #[0-9a-f]{4} last seen \d{1,2}:\d{2}")])
    # A page that arrives later has it from the server: Ann online, Bob offline.
    cy_context = await browser.new_context(viewport={"width": 1100, "height": 720})
    cy = await cy_context.new_page()
    cy_seen = watch(cy)
    await sign_in(cy, chat.http, room, "Cy")
    await expect(members(cy)).to_have_text(listed("Ann", "Cy (you)"))
    await expect(cy.locator("#offline-list li")).to_have_text([re.compile(r"^Bob #[0-9a-f]{4} last seen ")])
    await expect(cy.get_by_role("heading", name="Offline (1)")).to_be_visible()

    for seen in (ann_seen, bob_seen, cy_seen):
        assert seen.page_errors == []
        assert seen.unexpected_console(EXPECTED_401) == []
    await ann_context.close()
    await bob_context.close()


def api(chat: ChatServer, token: str) -> httpx.AsyncClient:
    """An HTTP client of the chat's API with `token` as its bearer."""
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(base_url=chat.http, headers=headers, trust_env=False, timeout=5)


async def token_of(context: Any) -> str:
    """The sign-in token a browser context holds (its session cookie)."""
    from examples.chat.auth import COOKIE  # support.chat put the project's root on sys.path

    cookies = {cookie["name"]: cookie["value"] for cookie in await context.cookies()}
    return cookies[COOKIE]


async def test_a_second_tab_is_one_member_and_a_kicked_user_stays_out(browser: Any, chat: ChatServer) -> None:
    """Members come from wsroute's presence: Ann's two tabs are one Ann, and closing one is
    no departure. An admin kicks Bob (``POST /api/admin/users/{id}/kick``): his page says so,
    stops taking messages and does not reconnect; Ann sees him leave."""
    room = room_name()
    ann_context = await browser.new_context()
    bob_context = await browser.new_context()
    ann, bob = await ann_context.new_page(), await bob_context.new_page()
    ann_seen, bob_seen = watch(ann), watch(bob)
    await sign_in(ann, chat.http, room, "Ann")
    await sign_in(bob, chat.http, room, "Bob")
    await expect(members(bob)).to_have_text(listed("Ann", "Bob (you)"))

    second_tab = await ann_context.new_page()  # same cookie: the same user
    await second_tab.goto(f"{chat.http}/rooms/{room}")
    await expect(second_tab.get_by_role("status")).to_have_text("Connected", timeout=10_000)
    await expect(members(second_tab)).to_have_text(listed("Ann (you)", "Bob"))
    async with api(chat, await token_of(ann_context)) as http:
        in_room = (await http.get(f"/api/rooms/{room}/members")).json()["members"]
    assert [(m["user"]["name"], m["connections"]) for m in in_room] == [("Ann", 2), ("Bob", 1)]
    await expect(members(bob)).to_have_text(listed("Ann", "Bob (you)"))
    await second_tab.close()
    await say(ann, room, "one tab now")
    await expect(log(bob).get_by_text("one tab now")).to_be_visible()
    await expect(log(bob).get_by_text(f"Ann left #{room}")).to_have_count(0)
    await expect(members(bob)).to_have_text(listed("Ann", "Bob (you)"))

    async with api(chat, await token_of(bob_context)) as http:
        bob_id = (await http.get("/api/session")).json()["user"]["id"]
    sockets_before = len(bob_seen.sockets)
    async with api(chat, ADMIN) as http:
        kicked = await http.post(f"/api/admin/users/{bob_id}/kick")
    assert kicked.json() == {"closed": 1}
    await expect(bob.get_by_role("alert").filter(has_text="An admin removed you")).to_be_visible()
    await expect(bob.get_by_role("status")).to_have_text("Removed by an admin")
    await expect(bob.get_by_label(f"Message #{room}")).to_be_disabled()
    await expect(log(ann).get_by_text(f"Bob left #{room}")).to_be_visible()
    await expect(members(ann)).to_have_text(listed("Ann (you)"))
    await asyncio.sleep(1.5)  # longer than the client's first reconnect delay
    assert len(bob_seen.sockets) == sockets_before, bob_seen.sockets
    for seen in (ann_seen, bob_seen):
        assert seen.page_errors == []
        assert seen.unexpected_console(EXPECTED_401) == []
    await ann_context.close()
    await bob_context.close()


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("expired", "Your sign-in has expired. Sign in again."),
        ("forged", "Your sign-in token is not valid"),
        ("rekeyed", "The server restarted with a new key: please sign in again."),
    ],
)
@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, {"width": 375, "height": 740}])
async def test_page_says_why_a_stored_token_is_refused(
    browser: Any, chat: ChatServer, token: str, message: str, viewport: Any
) -> None:
    from examples.chat import auth
    from examples.chat.models import User

    user = User(id="u1", name="Ann")
    if token == "expired":
        value = auth.issue(SECRET.encode(), user, -60)[0]
    elif token == "rekeyed":
        value = auth.issue(b"the key before a restart", user, 60)[0]
    else:  # our key's token, its name changed: the signature no longer matches
        value = auth.issue(SECRET.encode(), user, 60)[0].replace(".", ".e", 1)
    context = await browser.new_context(viewport=viewport)
    await context.add_cookies([{"name": auth.COOKIE, "value": value, "url": chat.http}])
    page = await context.new_page()
    seen = watch(page)
    await page.goto(f"{chat.http}/")
    problem = page.get_by_role("alert").filter(has_text=message)
    await expect(problem).to_be_visible()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert await page.evaluate("document.activeElement.id") == "name"
    assert seen.sockets == []  # it asked over HTTP first: no doomed WebSocket
    assert seen.page_errors == []
    await context.close()


async def in_rooms(page: Any) -> None:
    """On a phone the rooms and "Join a room" are in a drawer: open it (no-op on a desktop)."""
    toggle = page.locator("#rooms-toggle")
    if await toggle.is_visible() and await toggle.get_attribute("aria-expanded") != "true":
        await toggle.click()


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, {"width": 375, "height": 740}])
async def test_page_reconnects_after_a_server_restart(browser: Any, tmp_path: Path, viewport: Any) -> None:
    room = room_name()
    server = ChatServer(chat_env(tmp_path / "chat.sqlite3", WSROUTE_BROKER="memory://"))
    try:
        server.start()
        context = await browser.new_context(viewport=viewport)
        page = await context.new_page()
        seen = watch(page)
        await sign_in(page, server.http, room, "Ann")
        await say(page, room, "before the restart")
        await expect(log(page).get_by_text("before the restart")).to_be_visible()

        await in_rooms(page)
        await page.get_by_label("Join a room").fill(f"{room}-2")
        await page.get_by_role("button", name="Join", exact=True).click()
        await expect(log(page).get_by_text(f"You joined #{room}-2")).to_be_visible()
        await in_rooms(page)
        await page.get_by_role("button", name=f"#{room}", exact=True).click()

        server.stop()
        await expect(page.get_by_role("status")).to_contain_text(re.compile("reconnecting|unreachable"))
        # Said while the server is down: shown at once, as pending, until the server has it.
        await say(page, room, "while you were away")
        pending = log(page).locator(".entry.pending").filter(has_text="while you were away")
        await expect(pending).to_contain_text("sending…")
        server.start()
        await expect(page.get_by_role("status")).to_have_text("Connected", timeout=20_000)
        await expect(pending).to_have_count(0)
        await expect(log(page).get_by_text("while you were away")).to_have_count(1)
        await say(page, room, "after the restart")
        await expect(log(page).get_by_text("after the restart")).to_be_visible()
        # The history was merged in: no duplicate. The reconnect is one line, not a line for
        # every member listed again.
        await expect(log(page).get_by_text("before the restart")).to_have_count(1)
        await expect(log(page).get_by_text("Reconnected", exact=True)).to_have_count(1)
        await expect(log(page).get_by_text(f"You joined #{room}")).to_have_count(1)
        await expect(members(page)).to_have_text(listed("Ann (you)"))
        assert len(seen.sockets) >= 2  # a new physical socket...
        assert len(seen.sockets) - len(seen.closed_sockets) <= 1  # ...and never two at once

        # Restarted with another key, the server refuses the token: the socket cannot open,
        # and after a few seconds the page asks over HTTP and says why. Signing in again (the
        # name is still in the box) brings back both rooms.
        server.stop()
        server.env = {**server.env, "WSROUTE_CHAT_SECRET": "a different secret"}
        started = time.monotonic()
        server.start()
        problem = page.get_by_role("alert").filter(has_text="restarted with a new key")
        await expect(problem).to_be_visible(timeout=20_000)
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        assert time.monotonic() - started < 20
        await expect(page.get_by_label("Display name")).to_have_value("Ann")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("status")).to_have_text("Connected", timeout=10_000)
        await in_rooms(page)
        for name in (room, f"{room}-2"):
            await expect(page.get_by_role("button", name=f"#{name}", exact=True)).to_be_visible()
        await expect(log(page).get_by_text("while you were away")).to_have_count(1)
        assert seen.page_errors == []
        assert seen.unexpected_console(EXPECTED_401, WHILE_DOWN) == []
        await context.close()
    finally:
        server.close()


async def test_footer_http_api_link_renders_swagger_ui_offline(browser: Any, chat: ChatServer) -> None:
    """The footer's "HTTP API" opens ``/docs``: Swagger UI, served by the app itself, lists the
    chat's HTTP routes; every request to a host other than 127.0.0.1 is aborted and recorded."""
    context = await browser.new_context()
    outside: list[str] = []
    failed: list[str] = []

    async def local_only(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            outside.append(url)
            await route.abort()

    await context.route("**/*", local_only)
    page = await context.new_page()
    seen = watch(page)
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    await page.goto(f"{chat.http}/")
    await page.get_by_role("link", name="HTTP API").click()
    await page.wait_for_url(f"{chat.http}/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("wsroute chat")
    for path in ("/api/session", "/api/rooms/{room}/messages", "/api/admin/rooms/{room}/announce"):
        # Swagger UI puts <wbr> between the segments: the text is the path, the attribute too.
        await expect(page.locator(f'.opblock-summary-path[data-path="{path}"]').first).to_have_text(path)
    await expect(page.locator(".opblock-post .opblock-summary-path").first).to_be_visible()
    # The vendored stylesheet was loaded and applied, not only the script.
    rules = await page.evaluate(
        """[...document.styleSheets]
             .filter((sheet) => sheet.href && sheet.href.endsWith('/static/swagger/swagger-ui.css'))
             .map((sheet) => sheet.cssRules.length)"""
    )
    assert len(rules) == 1 and rules[0] > 100, rules
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "chat-docs.png"), full_page=True)
    await context.close()
    assert outside == [], f"requests outside 127.0.0.1: {outside}"
    # The chat page's first /api/session is the expected 401 (not signed in); nothing else failed.
    assert [url for url in failed if not url.endswith("/api/session")] == [], failed
    assert seen.page_errors == []
    assert seen.unexpected_console(EXPECTED_401) == []


async def test_messages_posted_while_the_page_was_offline_appear_once_in_order(
    browser: Any, chat: ChatServer
) -> None:
    """The page's network drops (its TCP connections reset, new ones refused) while Bob
    posts; when it is back, the client resubscribes with its position and the server replays
    what it missed: the messages appear once, in order, with no reload and no history request."""
    room = room_name()
    async with CuttableProxy(chat.port) as proxy:
        via_proxy = f"http://127.0.0.1:{await proxy.start()}"
        ann_context, bob_context = await browser.new_context(), await browser.new_context()
        ann, bob = await ann_context.new_page(), await bob_context.new_page()
        ann_seen = watch(ann)
        await sign_in(ann, via_proxy, room, "Ann")
        await sign_in(bob, chat.http, room, "Bob")
        await say(bob, room, "before the drop")
        await expect(log(ann).get_by_text("before the drop")).to_be_visible()
        history_requests: list[str] = []
        ann.on("request", lambda r: history_requests.append(r.url) if "/messages" in r.url else None)
        ann.on("framenavigated", lambda frame: history_requests.append(f"navigated {frame.url}"))

        proxy.down = True
        proxy.cut()
        await expect(ann.get_by_role("status")).to_contain_text(re.compile("reconnecting|unreachable"))
        missed = [f"while you were away {i}" for i in range(3)]
        for text in missed:
            await say(bob, room, text)
            await expect(log(bob).get_by_text(text)).to_be_visible()
        await asyncio.sleep(1.5)
        proxy.down = False

        await expect(ann.get_by_role("status")).to_have_text("Connected", timeout=20_000)
        for text in missed:
            await expect(log(ann).get_by_text(text)).to_have_count(1)
        texts = await log(ann).locator("li").all_inner_texts()
        order = [next(i for i, t in enumerate(texts) if text in t) for text in ["before the drop", *missed]]
        assert order == sorted(order), texts
        await expect(log(ann).get_by_text("before the drop")).to_have_count(1)
        assert history_requests == [], "recovered over the socket, not by reloading"
        await say(ann, room, "back")
        await expect(log(bob).get_by_text("back")).to_be_visible()
        assert ann_seen.page_errors == []
        assert ann_seen.unexpected_console(EXPECTED_401, WHILE_DOWN) == []
        await ann_context.close()
        await bob_context.close()


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, {"width": 375, "height": 740}])
async def test_a_message_lost_with_its_connection_is_sent_again_once(
    browser: Any, chat: ChatServer, viewport: Any
) -> None:
    """A connection can die without a sign: what the page sent then may or may not have
    reached the server. The line stays pending ("sending…") until the server's echo; after the
    reconnect the page sends it again, in the order typed, and the server keeps one message per
    ref, so everyone sees it once whichever way it was lost."""
    room = room_name()
    async with CuttableProxy(chat.port) as proxy:
        via_proxy = f"http://127.0.0.1:{await proxy.start()}"
        ann_context = await browser.new_context(viewport=viewport)
        bob_context = await browser.new_context()
        ann, bob = await ann_context.new_page(), await bob_context.new_page()
        ann_seen = watch(ann)
        await sign_in(ann, via_proxy, room, "Ann")
        await sign_in(bob, chat.http, room, "Bob")
        pending = log(ann).locator(".entry.pending")

        # Lost on the way up: the server never got it. The next one is typed while the page
        # reconnects, and must still come after it.
        proxy.dropping = {"up"}
        await say(ann, room, "lost on the way")
        await expect(pending).to_contain_text("sending…")
        await asyncio.sleep(0.5)
        await expect(log(bob).get_by_text("lost on the way")).to_have_count(0)
        proxy.down = True
        proxy.cut()
        await expect(ann.get_by_role("status")).to_contain_text(re.compile("reconnecting|unreachable"))
        await say(ann, room, "typed after it")
        await expect(pending).to_have_count(2)
        proxy.dropping = set()
        proxy.down = False
        await expect(pending).to_have_count(0, timeout=20_000)
        for text in ("lost on the way", "typed after it"):
            await expect(log(bob).get_by_text(text)).to_have_count(1)
        texts = await log(bob).locator("li").all_inner_texts()
        first, second = (
            next(i for i, t in enumerate(texts) if text in t) for text in ("lost on", "typed after")
        )
        assert first < second, texts

        # Lost on the way down: the server kept and broadcast it, only the echo was lost. The
        # replay after the reconnect confirms it; the resend is answered, not posted again.
        proxy.dropping = {"down"}
        await say(ann, room, "echo lost")
        await expect(log(bob).get_by_text("echo lost")).to_have_count(1)
        await expect(pending).to_have_count(1)
        proxy.dropping = set()
        proxy.cut()
        await expect(pending).to_have_count(0, timeout=20_000)
        await expect(log(ann).get_by_text("echo lost")).to_have_count(1)
        await asyncio.sleep(1.0)  # a second copy would have come by now
        for page in (ann, bob):
            await expect(log(page).get_by_text("echo lost")).to_have_count(1)
            await expect(log(page).get_by_text("lost on the way")).to_have_count(1)
        assert ann_seen.page_errors == []
        await ann_context.close()
        await bob_context.close()
