"""Driving the chat example's page in Chromium: what the chat's browser tests share
(tests/test_chat_browser.py, test_chat_layout_browser.py, test_chat_text_browser.py)."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from support.chat import ChatServer, chat_env, chat_server


@contextlib.contextmanager
def memory_chat(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[ChatServer]:
    """A chat server on the memory broker, with its database in a new temporary folder."""
    db = tmp_path_factory.mktemp(name) / "chat.sqlite3"
    with chat_server(chat_env(db, WSROUTE_BROKER="memory://")) as server:
        yield server


def room_name(prefix: str) -> str:
    """A room of its own for each test (the server is shared by a module's tests)."""
    return f"{prefix}-{secrets.token_hex(3)}"


async def sign_in(page: Any, base: str, room: str, name: str) -> None:
    """Open the room's URL, sign in (by clicks), and wait until the page is connected."""
    from playwright.async_api import expect

    await page.goto(f"{base}/rooms/{room}")
    await page.get_by_label("Display name").fill(name)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("status")).to_have_text("Connected", timeout=10_000)
    await expect(page.get_by_role("heading", name=f"#{room}")).to_be_visible()


async def say(page: Any, room: str, text: str, *, with_button: bool = False) -> None:
    """Type `text` in the room's message box and send it (Enter, or the Send button)."""
    box = page.get_by_label(f"Message #{room}")
    await box.fill(text)
    if with_button:
        await page.get_by_role("button", name="Send").click()
    else:
        await box.press("Enter")


def log(page: Any) -> Any:
    """The shown room's log."""
    return page.get_by_role("log")


def members(page: Any) -> Any:
    """The lines of the shown room's member list."""
    return page.locator("#member-list li")


def listed(*labels: str) -> list[re.Pattern[str]]:
    """The member list's lines for `labels` ("Ann", "Bob (you)"): each name is followed by its
    user's tag (``#`` and the last 4 characters of the id), which tells apart equal names."""
    lines = []
    for label in labels:
        name, you, _ = label.partition(" (you)")
        lines.append(re.compile(rf"^{re.escape(name)} #[0-9a-f]{{4}}{re.escape(you)}$"))
    return lines


async def set_hidden(page: Any, hidden: bool) -> None:
    """Make the page report itself hidden (or visible) and tell it, as switching browser tabs
    does: ``document.hidden``, ``visibilityState`` and a ``visibilitychange`` event."""
    await page.evaluate(
        """(hidden) => {
            const state = hidden ? "hidden" : "visible";
            for (const [name, value] of [["hidden", hidden], ["visibilityState", state]]) {
                Object.defineProperty(document, name, { value, configurable: true });
            }
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )
