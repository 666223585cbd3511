"""The chat page's people and text in real headless Chromium, at a desktop and a phone size:
hostile and look-alike names, two users with one name, right-to-left text, days and grouping
in the log, and a sign-in that expires while the page is open.

See tests/test_chat_browser.py for the chat's main flows and tests/test_chat_layout_browser.py
for layout, keyboard use and axe. Chromium is ``/usr/bin/chromium`` (skipped without it,
except under ``CI=true``).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from support import chat_page
from support.browser import watch
from support.chat import ChatServer, chat_env, chat_server
from support.chat_page import log, members, memory_chat, say, sign_in

pytestmark = [pytest.mark.frontend, pytest.mark.browser]

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 375, "height": 740}}
EXPECTED_401 = re.compile(r"^Failed to load resource: the server responded with a status of (401|422)")


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    with memory_chat(tmp_path_factory, "chat-text") as server:
        yield server


def room_name() -> str:
    return chat_page.room_name("t")


def midday_zone() -> str:
    """A time zone where it is now about noon: "today" and "yesterday" are then never a few
    minutes from midnight, whenever the test runs."""
    hour = datetime.now(UTC).hour
    offset = max(-12, min(12, 12 - hour))  # local hour = UTC hour + offset
    # POSIX sign: Etc/GMT-5 is five hours *ahead* of UTC.
    return "Etc/UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


async def open_page(browser: Any, size: str, **options: Any) -> Any:
    context = await browser.new_context(viewport=SIZES[size], timezone_id=midday_zone(), **options)
    return await context.new_page()


async def test_a_name_of_32_emoji_is_kept_whole_and_a_longer_one_is_refused(
    browser: Any, chat: ChatServer
) -> None:
    """The 32-character limit counts characters, as the server does: a `maxlength` on the
    box counted UTF-16 units and cut a name of 17 or more emoji (two units each) in half."""
    page = await open_page(browser, "desktop")
    await page.goto(f"{chat.http}/rooms/{room_name()}")
    box = page.get_by_label("Display name")
    await box.fill("🦊" * 33)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert").filter(has_text="32")).to_be_visible()
    await box.fill("🦊" * 32)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("status")).to_have_text("Connected", timeout=10_000)
    await expect(page.locator("#me")).to_have_text("🦊" * 32)
    await page.context.close()


@pytest.mark.parametrize("size", SIZES)
async def test_hostile_and_equal_names_and_right_to_left_text(
    browser: Any, chat: ChatServer, size: str
) -> None:
    room = room_name()
    first, second = await open_page(browser, size), await open_page(browser, size)
    seen = watch(first)

    # A name that reorders itself (U+202E shows "NIMDA" as "ADMIN") or shows nothing is refused,
    # and the page says why.
    await first.goto(f"{chat.http}/rooms/{room}")
    for hostile, why in [("\u202eNIMDA", "invisible formatting"), ("\u3164", "visible character")]:
        await first.get_by_label("Display name").fill(hostile)
        await first.get_by_role("button", name="Sign in").click()
        await expect(first.get_by_role("alert").filter(has_text=why)).to_be_visible()
    # Full-width letters are the same name as plain ones (NFKC): both users are "Sam".
    await first.get_by_label("Display name").fill("\uff33\uff41\uff4d")  # full-width "Sam"
    await first.get_by_role("button", name="Sign in").click()
    await expect(first.get_by_role("status")).to_have_text("Connected", timeout=10_000)
    await expect(first.locator("#me")).to_have_text("Sam")
    await sign_in(second, chat.http, room, "Sam")

    # Two Sams, told apart by their tags in the member list and on their messages.
    for page in (first, second):
        await expect(members(page)).to_have_count(2)
    tags = await members(second).locator(".tag").all_text_contents()
    assert len(set(tags)) == 2 and all(re.fullmatch(r"#[0-9a-f]{4}", tag) for tag in tags), tags
    await say(first, room, "one")
    await say(second, room, "two")
    for page in (first, second):
        await expect(log(page).locator(".entry-message")).to_have_count(2)
    said = log(second).locator(".entry-message .tag")
    assert await said.nth(0).text_content() != await said.nth(1).text_content()

    # Right-to-left text aligns right; markup and direction overrides do nothing.
    await say(first, room, "مرحبا بالعالم")
    await say(first, room, "<img src=x onerror=alert(1)>")
    await say(first, room, "abc\u202edef")
    arabic = log(second).locator(".entry-text", has_text="مرحبا بالعالم")
    await expect(arabic).to_have_attribute("dir", "auto")
    assert await arabic.evaluate("(el) => getComputedStyle(el).direction") == "rtl"
    await expect(log(second).get_by_text("<img src=x onerror=alert(1)>")).to_be_visible()
    await expect(log(second).locator("img")).to_have_count(0)
    await expect(log(second).get_by_text("abcdef", exact=True)).to_be_visible()
    assert seen.page_errors == []
    assert seen.unexpected_console(EXPECTED_401) == []


def seed(db: Path, room: str, rows: list[tuple[str, str, float]]) -> None:
    """Messages of `room` said at given times, as the server would have kept them."""
    with sqlite3.connect(db) as connection:
        for name, text, at in rows:
            connection.execute(
                "INSERT INTO messages (room, kind, user_id, user_name, text, at) "
                "VALUES (?, 'message', ?, ?, ?, ?)",
                (room, f"seeded-{name.lower()}", name, text, at),
            )


@pytest.mark.parametrize("size", SIZES)
async def test_log_has_days_and_groups_a_persons_messages(browser: Any, chat: ChatServer, size: str) -> None:
    room = room_name()
    now = time.time()
    day = 24 * 3600
    seed(
        Path(chat.env["WSROUTE_CHAT_DB"]),
        room,
        [
            ("Ann", "three days ago", now - 3 * day),
            ("Ann", "and a minute later", now - 3 * day + 60),
            ("Bob", "yesterday's news", now - day),
            ("Bob", "this morning", now - 120),
            ("Bob", "again", now - 90),
            ("Ann", "hello Bob", now - 60),
        ],
    )
    page = await open_page(browser, size)
    await sign_in(page, chat.http, room, "Cat")
    entries = log(page).locator(".entry-message")
    await expect(entries).to_have_count(6)

    # A separator where the day changes: the full date, "Yesterday", "Today".
    days = log(page).locator(".day")
    await expect(days).to_have_count(3)
    labels = await days.all_text_contents()
    assert labels[1:] == ["Yesterday", "Today"], labels
    assert re.search(r"\d{4}", labels[0]) and labels[0] not in ("Today", "Yesterday"), labels

    # Times carry the date when it is not today.
    times = await entries.locator("time").all_text_contents()
    assert all(not re.fullmatch(r"\d\d:\d\d( [AP]M)?", t) for t in times[:3]), times
    assert all(re.fullmatch(r"\d\d:\d\d( [AP]M)?", t) for t in times[3:]), times

    # Consecutive messages of one person, one day, minutes apart share one name line: the
    # name is out of sight but still read out with the message.
    grouped = [await entries.nth(i).evaluate("(el) => el.classList.contains('continued')") for i in range(6)]
    assert grouped == [False, True, False, False, True, False], grouped
    continued = entries.nth(1)
    box = await continued.locator(".entry-meta").bounding_box()
    assert box is None or box["height"] <= 1
    assert "Ann" in (await continued.text_content() or "")
    # Not grouped across a day, nor across another person's message.
    assert await entries.nth(2).locator(".entry-meta strong").is_visible()


@pytest.mark.parametrize("size", SIZES)
async def test_the_page_says_when_the_sign_in_expires(browser: Any, tmp_path: Path, size: str) -> None:
    """The server closes the sockets of a sign-in when it expires (4401); the page asks why
    and says so, with the name still in the box."""
    with chat_server(chat_env(tmp_path / "chat.sqlite3", WSROUTE_CHAT_TOKEN_TTL="6")) as server:
        page = await open_page(browser, size)
        seen = watch(page)
        await sign_in(page, server.http, room_name(), "Ann")
        problem = page.get_by_role("alert").filter(has_text="Your sign-in has expired")
        await expect(problem).to_be_visible(timeout=20_000)
        await expect(page.get_by_label("Display name")).to_have_value("Ann")
        # After a reload too: the cookie outlives the token, so the server can say why.
        await page.reload()
        await expect(problem).to_be_visible()
        assert seen.page_errors == []
