"""The chat page kept open all day: a sign-in changed in another tab, rooms joined and left by
the dozen, Back and Forward, a reload after leaving every room, half an emoji pasted. Real
Chromium against the real chat server (memory broker); each test in a room of its own."""

from __future__ import annotations

import array
import re
from collections.abc import Iterator
from typing import Any

import pytest

from support import chat_page
from support.chat import ChatServer, chat_env
from support.chat_page import memory_chat, say, sign_in

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    with memory_chat(tmp_path_factory, "chat-all-day") as server:
        yield server


async def send_at_once(page: Any, texts: list[str]) -> None:
    """Type and send each of `texts` through the message box, in one step of the page (no
    waiting between them, as a paste-and-Enter script or a stuck key would). Passed as UTF-16
    code units, so that a lone surrogate reaches the page as one."""
    units = [array.array("H", text.encode("utf-16-le", "surrogatepass")).tolist() for text in texts]
    await page.evaluate(
        """(texts) => {
          const box = document.getElementById("composer-text");
          for (const units of texts) {
            box.value = String.fromCharCode(...units);
            box.dispatchEvent(new Event("input"));
            document.getElementById("send").click();
          }
        }""",
        units,
    )


async def rooms_listed(page: Any) -> list[str]:
    return list(await page.locator("#room-list li").evaluate_all("items => items.map(i => i.dataset.room)"))


async def test_a_tab_follows_a_sign_in_made_in_another_tab_visibly(browser: Any, chat: ChatServer) -> None:
    """Tab A is Ann; in tab B the user signs out and in as Bob; A's socket reconnects with
    the browser's cookie, now Bob's. A showed "Ann" and posted as Bob; it must show Bob."""
    room = chat_page.room_name("id")
    context = await browser.new_context()
    try:
        a = await context.new_page()
        await sign_in(a, chat.http, room, "Ann")
        b = await context.new_page()
        await b.goto(f"{chat.http}/rooms/{room}")
        await expect(b.get_by_role("status")).to_have_text("Connected", timeout=10_000)
        await b.get_by_role("button", name="Sign out").click()
        await b.get_by_label("Display name").fill("Bob")
        await b.get_by_role("button", name="Sign in").click()
        await expect(b.get_by_role("status")).to_have_text("Connected", timeout=10_000)
        await b.close()

        chat.stop()
        await expect(a.get_by_role("status")).not_to_have_text("Connected", timeout=10_000)
        chat.start()
        await expect(a.get_by_role("status")).to_have_text("Connected", timeout=20_000)
        await expect(a.locator("#me")).to_have_text("Bob", timeout=10_000)
        await say(a, room, "typed in tab A")
        line = a.locator("#log li").filter(has_text="typed in tab A")
        await expect(line).to_have_class(re.compile(r"\bmine\b"))  # ours, as Bob
    finally:
        await context.close()


async def test_rooms_joined_and_left_are_let_go(browser: Any, chat: ChatServer) -> None:
    """Each room added a listener to the shared socket that nothing removed: every room ever
    joined (and its log) stayed in memory, and got every reconnect's events."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.add_init_script(
            """(() => {
              window.stateListeners = 0;
              const add = EventTarget.prototype.addEventListener;
              const remove = EventTarget.prototype.removeEventListener;
              EventTarget.prototype.addEventListener = function (type, ...rest) {
                if (type === "statechange") window.stateListeners += 1;
                return add.call(this, type, ...rest);
              };
              EventTarget.prototype.removeEventListener = function (type, ...rest) {
                if (type === "statechange") window.stateListeners -= 1;
                return remove.call(this, type, ...rest);
              };
            })()"""
        )
        first = chat_page.room_name("keep")
        await sign_in(page, chat.http, first, "Ann")
        before = await page.evaluate("window.stateListeners")
        for _ in range(8):
            name = chat_page.room_name("tmp")
            await page.get_by_label("Join a room").fill(name)
            await page.get_by_role("button", name="Join").click()
            await expect(page.get_by_role("heading", name=f"#{name}")).to_be_visible()
            await page.get_by_role("button", name=f"Leave #{name}").click()
            await expect(page.locator(f'#room-list li[data-room="{name}"]')).to_have_count(0)
        assert await page.evaluate("window.stateListeners") == before
    finally:
        await context.close()


async def test_back_never_joins_a_room_that_was_left(browser: Any, chat: ChatServer) -> None:
    home, other = chat_page.room_name("home"), chat_page.room_name("left")
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await sign_in(page, chat.http, home, "Ann")
        await page.get_by_label("Join a room").fill(other)
        await page.get_by_role("button", name="Join").click()
        await expect(page.get_by_role("heading", name=f"#{other}")).to_be_visible()
        await page.get_by_role("button", name=f"Leave #{other}").click()
        await expect(page.locator(f'#room-list li[data-room="{other}"]')).to_have_count(0)
        await page.go_back()  # to /rooms/<other>, which was left
        await expect(page).to_have_url(f"{chat.http}/rooms/{home}")  # the address says where we are
        assert await rooms_listed(page) == [home]
    finally:
        await context.close()


async def test_a_reload_after_leaving_every_room_stays_out_of_them(browser: Any, chat: ChatServer) -> None:
    room = chat_page.room_name("only")
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await sign_in(page, chat.http, room, "Ann")
        await page.get_by_role("button", name=f"Leave #{room}").click()
        await expect(page.get_by_role("status")).to_have_text("Not in any room")
        await page.goto(chat.http)  # the app's address, as a bookmark would open it
        await expect(page.get_by_role("status")).to_have_text("Not in any room")
        assert await rooms_listed(page) == []  # not put back in the lobby
    finally:
        await context.close()


async def test_half_an_emoji_is_sent_as_a_replacement_character(browser: Any, chat: ChatServer) -> None:
    """A paste cut in the middle of an emoji (a lone surrogate) is not JSON the server reads:
    the line stayed "sending…" for ever and was refused at every reconnect."""
    room = chat_page.room_name("half")
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await sign_in(page, chat.http, room, "Ann")
        await send_at_once(page, ["see you \ud83d"])
        await expect(page.locator("#log li").filter(has_text="see you \ufffd")).to_have_count(1)
        await expect(page.locator("#log li.pending")).to_have_count(0)
    finally:
        await context.close()


async def test_a_burst_over_the_rate_limit_leaves_nothing_sending(browser: Any, chat: ChatServer) -> None:
    """80 messages sent at once: the server takes the first 60 (and what its bucket refills
    meanwhile) and refuses the rest, naming their refs: the page settles those lines, says
    why and puts the first refused text back, instead of leaving them "sending…" until the
    next reconnect."""
    room = chat_page.room_name("flood")
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await sign_in(page, chat.http, room, "Ann")
        await send_at_once(page, [f"burst {n}" for n in range(80)])
        await expect(page.locator("#log li.pending")).to_have_count(0, timeout=10_000)
        await expect(page.locator("#composer-problem")).to_contain_text("too fast")
        lines = await page.locator("#log li").filter(has_text=re.compile(r"burst \d+$")).all_text_contents()
        kept = {int(line.rsplit(" ", 1)[1]) for line in lines}
        assert set(range(60)) <= kept and len(kept) < 80, sorted(set(range(80)) - kept)
        first_refused = min(set(range(80)) - kept)
        assert await page.locator("#composer-text").input_value() == f"burst {first_refused}"
    finally:
        await context.close()


async def test_what_was_typed_offline_is_sent_after_signing_in_again(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Typed while the server was down, and the server came back with a new key, so the
    page asks to sign in again: once the same name has, the text is sent (it vanished)."""
    room = chat_page.room_name("offline")
    db = tmp_path_factory.mktemp("chat-offline") / "chat.sqlite3"
    server = ChatServer(chat_env(db, WSROUTE_BROKER="memory://"))
    context = await browser.new_context()
    try:
        server.start()
        page = await context.new_page()
        await sign_in(page, server.http, room, "Ann")
        server.stop()
        await expect(page.get_by_role("status")).not_to_have_text("Connected", timeout=10_000)
        await say(page, room, "typed while the server was down")
        await expect(page.locator("#log li.pending")).to_have_count(1)
        server.env = {**server.env, "WSROUTE_CHAT_SECRET": "a new key: every sign-in ends"}
        server.start()
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=20_000)
        await page.get_by_role("button", name="Sign in").click()  # the name is still in the box
        await expect(page.get_by_role("status")).to_have_text("Connected", timeout=10_000)
        sent = page.locator("#log li").filter(has_text="typed while the server was down")
        await expect(sent).to_have_count(1)
        await expect(page.locator("#log li.pending")).to_have_count(0)
    finally:
        await context.close()
        server.close()
