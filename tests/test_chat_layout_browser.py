"""The chat example's page on a phone, with a keyboard only and for screen readers, in real
headless Chromium at 1280x800 and 375x740.

On a phone the page is one screen that never scrolls: the header (with the connection status)
on top, the composer at the bottom, the log in between; the rooms and "Join a room" are in a
drawer behind a "Rooms" button, which acts as a modal while open. A touch screen gets no focus
it did not ask for (that would pop up the keyboard). With the keyboard alone, a user signs in,
joins, switches and leaves rooms and sends a message, and every control focused shows a focus
ring. New messages are added to a role="log" region without replacing what is there, emoji are
drawn in colour, and axe-core finds nothing serious on any view, in light and dark.

axe-core comes from tests/js (``npm ci --prefix tests/js``): missing, its test skips, except
under ``CI=true`` where it fails. Screenshots go to ``test-artifacts/`` (artifacts, not
assertions).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import chat_page
from support.browser import ARTIFACTS, watch
from support.chat import ADMIN, ChatServer
from support.chat_page import log, memory_chat, say, sign_in
from support.ci import unavailable
from support.processes import ROOT

pytestmark = [pytest.mark.frontend, pytest.mark.browser]

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect
PlaywrightError = playwright_api.Error

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
BOTH_SIZES = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "375x740"])
AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"
# A first visit asks /api/session and gets 401 (not signed in): Chromium logs that load.
EXPECTED_401 = re.compile(r"^Failed to load resource: the server responded with a status of 401")

# The focused element, and whether it shows a focus indicator: an outline (style not "none",
# width above 0) or a box shadow. Also whether it is on screen, since a ring nobody can see
# (an element hidden or scrolled away) is no indicator.
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
  return {
    what: el.id ? `#${el.id}` : `${el.tagName.toLowerCase()}.${el.className} ${el.ariaLabel ?? ""}`,
    ring: outline || style.boxShadow !== "none",
    onScreen: box.width > 0 && box.height > 0 && box.bottom > 0 && box.top < innerHeight
      && box.right > 0 && box.left < innerWidth,
  };
}"""


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    with memory_chat(tmp_path_factory, "chat-layout") as server:
        yield server


def room_name() -> str:
    return chat_page.room_name("l")


def is_phone(viewport: dict[str, int]) -> bool:
    return viewport["width"] <= 720


def admin() -> httpx.AsyncClient:
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {ADMIN}"}, trust_env=False, timeout=5)


async def announce(chat: ChatServer, room: str, text: str) -> None:
    async with admin() as http:
        response = await http.post(f"{chat.http}/api/admin/rooms/{room}/announce", json={"text": text})
    assert response.status_code == 202, response.text


async def kick(chat: ChatServer, context: Any) -> None:
    """Have an admin remove the user signed in in `context` (``POST /api/admin/users/{id}/kick``)."""
    from examples.chat.auth import COOKIE  # support.chat put the project's root on sys.path

    token = {cookie["name"]: cookie["value"] for cookie in await context.cookies()}[COOKIE]
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        session = await http.get(f"{chat.http}/api/session", headers={"Authorization": f"Bearer {token}"})
    async with admin() as http:
        kicked = await http.post(f"{chat.http}/api/admin/users/{session.json()['user']['id']}/kick")
    assert kicked.json()["closed"] >= 1


async def box_of(page: Any, selector: str) -> dict[str, float]:
    box = await page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not rendered"
    return dict(box)


def screenshot(page: Any, name: str) -> Any:
    ARTIFACTS.mkdir(exist_ok=True)
    return page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


# ------------------------------------------------------------------------------ the phone layout


async def test_phone_layout_is_one_screen_with_the_rooms_in_a_drawer(browser: Any, chat: ChatServer) -> None:
    room, other = room_name(), room_name()
    context = await browser.new_context(viewport=PHONE)
    page = await context.new_page()
    seen = watch(page)
    await sign_in(page, chat.http, room, "Ann")
    for i in range(40):  # more than the log can show: it scrolls, the page does not
        await announce(chat, room, f"announcement {i}")
    await expect(log(page).get_by_text("announcement 39")).to_be_visible()

    # Header and status on top, composer at the bottom, the log filling what is between.
    header, status = await box_of(page, "header.top"), await box_of(page, "#connection")
    composer, the_log = await box_of(page, "#composer"), await box_of(page, "#log")
    assert header["y"] == 0 and status["y"] >= 0
    assert PHONE["height"] - 48 <= composer["y"] + composer["height"] <= PHONE["height"]
    assert header["y"] + header["height"] <= the_log["y"] < header["y"] + header["height"] + 100
    assert composer["y"] - 24 <= the_log["y"] + the_log["height"] <= composer["y"]
    assert the_log["height"] > PHONE["height"] * 0.45, the_log
    await expect(page.get_by_role("button", name="Send")).to_be_in_viewport()
    assert await page.evaluate("document.documentElement.scrollHeight <= innerHeight")
    assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    assert await page.evaluate("getComputedStyle(document.getElementById('log')).overflowY") == "auto"

    # Focusing the message box scrolls nothing: header and status stay in sight.
    await page.get_by_label(f"Message #{room}").focus()
    await page.get_by_label(f"Message #{room}").click()
    assert await page.evaluate("window.scrollY") == 0
    await expect(page.get_by_role("status")).to_be_in_viewport()
    await expect(page.get_by_role("heading", name="wsroute chat")).to_be_in_viewport()
    await screenshot(page, "chat-phone")

    # The drawer: closed it is not there at all (nor in the tab order).
    toggle = page.get_by_role("button", name="Rooms")
    drawer = page.locator("#rooms-drawer")
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await expect(toggle).to_have_attribute("aria-controls", "rooms-drawer")
    await expect(drawer).to_be_hidden()
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(drawer.get_by_role("button", name=f"#{room}", exact=True)).to_be_visible()
    await expect(drawer.get_by_label("Join a room")).to_be_visible()
    assert await page.evaluate("document.getElementById('rooms-drawer').contains(document.activeElement)")
    # A modal: the rest is inert while it is open.
    assert await page.evaluate("document.querySelector('main.room').inert")
    await screenshot(page, "chat-phone-drawer")
    await page.keyboard.press("Escape")
    await expect(drawer).to_be_hidden()
    await expect(toggle).to_be_focused()
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    assert not await page.evaluate("document.querySelector('main.room').inert")

    # Joining a room from the drawer closes it and shows the room.
    await toggle.click()
    await drawer.get_by_label("Join a room").fill(other)
    await drawer.get_by_role("button", name="Join", exact=True).click()
    await expect(drawer).to_be_hidden()
    await expect(page.get_by_role("heading", name=f"#{other}")).to_be_visible()
    await expect(log(page).get_by_text(f"You joined #{other}")).to_be_visible()
    assert page.url.endswith(f"/rooms/{other}")

    # News in the other room shows on the toggle; choosing that room closes the drawer.
    await announce(chat, room, "while you were away")
    await expect(page.get_by_role("button", name="Rooms (1 unread)")).to_be_visible()
    seen_text = """(el) => { const copy = el.cloneNode(true);
      copy.querySelectorAll(".visually-hidden").forEach((hidden) => hidden.remove());
      return copy.textContent; }"""
    assert await toggle.evaluate(seen_text) == "Rooms (1)"  # "unread" is for screen readers only
    await toggle.click()
    await drawer.get_by_role("button", name=f"#{room}, 1 unread").click()
    await expect(drawer).to_be_hidden()
    await expect(page.get_by_role("heading", name=f"#{room}")).to_be_visible()
    await expect(log(page).get_by_text("while you were away")).to_be_visible()
    await expect(toggle).to_have_accessible_name("Rooms")
    await expect(page.get_by_label(f"Message #{room}")).to_be_focused()  # not a touch screen

    # Leaving from the header (the room list is in the closed drawer).
    await page.get_by_role("button", name=f"Leave #{room}").click()
    await expect(page.get_by_role("heading", name=f"#{other}")).to_be_visible()
    await toggle.click()
    await expect(drawer.get_by_role("button", name=f"#{room}", exact=True)).to_have_count(0)
    assert seen.page_errors == []
    assert seen.unexpected_console(EXPECTED_401) == []
    await context.close()


async def test_desktop_keeps_three_columns_and_no_drawer(browser: Any, chat: ChatServer) -> None:
    room = room_name()
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await sign_in(page, chat.http, room, "Ann")
    await expect(page.locator("#rooms-toggle")).to_be_hidden()
    await expect(page.locator("#leave-current")).to_be_hidden()
    rooms, main, members = [await box_of(page, sel) for sel in ("nav.rooms", "main.room", "aside.members")]
    assert rooms["x"] + rooms["width"] <= main["x"] < main["x"] + main["width"] <= members["x"]
    assert rooms["height"] == main["height"] == members["height"]
    composer = await box_of(page, "#composer")
    assert composer["y"] + composer["height"] <= DESKTOP["height"]
    await expect(page.get_by_role("contentinfo")).to_be_visible()
    await context.close()


async def test_touch_screen_gets_no_focus_it_did_not_ask_for(browser: Any, chat: ChatServer) -> None:
    room, other = room_name(), room_name()
    context = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    page = await context.new_page()
    seen = watch(page)
    await page.goto(f"{chat.http}/rooms/{room}")
    await expect(page.get_by_label("Display name")).to_be_visible()
    assert await page.evaluate("matchMedia('(pointer: coarse)').matches")
    assert await page.evaluate("document.activeElement === document.body")
    await page.get_by_label("Display name").fill("Ann")
    await page.get_by_role("button", name="Sign in").tap()
    await expect(page.get_by_role("status")).to_have_text("Connected", timeout=10_000)
    assert await page.evaluate("document.activeElement === document.body")

    # Joining and switching rooms does not open the keyboard either.
    await page.get_by_role("button", name="Rooms").tap()
    await page.get_by_label("Join a room").fill(other)
    await page.get_by_role("button", name="Join", exact=True).tap()
    await expect(page.get_by_role("heading", name=f"#{other}")).to_be_visible()
    assert await page.evaluate("document.activeElement.tagName") != "INPUT"
    await page.get_by_role("button", name="Rooms").tap()
    await page.get_by_role("button", name=f"#{room}", exact=True).tap()
    await expect(page.get_by_role("heading", name=f"#{room}")).to_be_visible()
    assert await page.evaluate("document.activeElement.tagName") != "INPUT"
    # Still no page scroll with a mobile viewport.
    assert await page.evaluate("window.scrollY") == 0
    assert await page.evaluate("document.documentElement.scrollHeight <= innerHeight")
    assert seen.page_errors == []
    await context.close()


# ------------------------------------------------------------------------------- keyboard only


async def focused(page: Any) -> dict[str, Any]:
    """The focused element, checked: it is on screen and shows a focus indicator."""
    state = await page.evaluate(FOCUSED)
    assert state is not None, "nothing has focus"
    assert state["ring"], f"{state['what']} has focus but no visible focus indicator"
    assert state["onScreen"], f"{state['what']} has focus but is not on screen"
    return dict(state)


async def tab_to(page: Any, selector: str, *, backwards: bool = False, limit: int = 30) -> None:
    """Press Tab (Shift+Tab) until `selector` has focus, checking every stop's focus indicator."""
    for _ in range(limit):
        await page.keyboard.press("Shift+Tab" if backwards else "Tab")
        await focused(page)
        if await page.evaluate("(selector) => document.activeElement.matches(selector)", selector):
            return
    pytest.fail(f"{selector} not reached in {limit} presses of {'Shift+Tab' if backwards else 'Tab'}")


async def expect_focus(page: Any, selector: str) -> None:
    await expect(page.locator(selector)).to_be_focused()
    await focused(page)


async def open_rooms(page: Any, phone: bool) -> None:
    """On a phone, open the drawer from the header (focus is then in it); on a desktop, the
    rooms are always there."""
    if phone:
        await tab_to(page, "#rooms-toggle", backwards=True)
        await page.keyboard.press("Enter")
        await expect(page.locator("#rooms-toggle")).to_have_attribute("aria-expanded", "true")
        await expect_focus(page, "#rooms-drawer .room-switch[aria-current=page]")


@BOTH_SIZES
async def test_keyboard_only_sign_in_join_switch_send_and_leave(
    browser: Any, chat: ChatServer, viewport: dict[str, int]
) -> None:
    room, other = room_name(), room_name()
    phone = is_phone(viewport)
    bob_context = await browser.new_context()
    bob = await bob_context.new_page()
    await sign_in(bob, chat.http, room, "Bob")
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    seen = watch(page)

    # Sign in: the name box has focus already (no touch screen); an empty name is refused.
    await page.goto(f"{chat.http}/rooms/{room}")
    await expect_focus(page, "#name")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("alert").filter(has_text="Enter a display name")).to_be_visible()
    await expect_focus(page, "#name")
    await page.keyboard.type("Ann")
    await tab_to(page, "#sign-in button[type=submit]")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status")).to_have_text("Connected", timeout=10_000)
    await expect_focus(page, "#composer-text")

    # The skip link is the first stop, and takes you to the message box.
    await tab_to(page, ".skip-link", backwards=True, limit=40)
    await expect(page.get_by_role("link", name="Skip to the message box")).to_be_in_viewport()
    await page.keyboard.press("Enter")
    await expect_focus(page, "#composer-text")

    # Join a second room.
    await open_rooms(page, phone)
    await tab_to(page, "#new-room", backwards=not phone)
    await page.keyboard.type(other)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name=f"#{other}")).to_be_visible()
    await expect(log(page).get_by_text(f"You joined #{other}")).to_be_visible()
    await expect(page.locator("#rooms-drawer")).to_be_visible(visible=not phone)
    await expect_focus(page, "#composer-text")

    # Switch back to the first room.
    await open_rooms(page, phone)
    await tab_to(page, f'.room-item[data-room="{room}"] .room-switch', backwards=True)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name=f"#{room}")).to_be_visible()
    await expect_focus(page, "#composer-text")

    # Send a message: Bob sees it.
    await page.keyboard.type("typed with the keyboard only")
    await page.keyboard.press("Enter")
    await expect(log(bob).get_by_text("typed with the keyboard only")).to_be_visible()
    await expect_focus(page, "#composer-text")

    # The log scrolls with the keyboard: it is a tab stop, with a ring.
    await tab_to(page, "#log", backwards=True)

    # Leave the room shown: its leave button in the room list (in the drawer on a phone).
    await open_rooms(page, phone)
    await tab_to(page, f'[aria-label="Leave #{room}"]', backwards=not phone)
    await page.keyboard.press("Enter")
    await expect(log(bob).get_by_text(f"Ann left #{room}")).to_be_visible()
    await expect(page.get_by_role("heading", name=f"#{other}")).to_be_visible()
    await expect(page.locator(f'.room-item[data-room="{room}"]')).to_have_count(0)
    if phone:
        # Still in the drawer, on the room now shown; Escape closes it, back on the toggle.
        await expect_focus(page, f'.room-item[data-room="{other}"] .room-switch')
        await page.keyboard.press("Escape")
        await expect(page.locator("#rooms-drawer")).to_be_hidden()
        await expect_focus(page, "#rooms-toggle")
    else:
        await expect_focus(page, "#composer-text")
    await screenshot(page, f"chat-keyboard-{viewport['width']}")
    assert seen.page_errors == []
    assert seen.unexpected_console(EXPECTED_401) == []
    await context.close()
    await bob_context.close()


# ------------------------------------------------------------------------ screen readers, emoji


@BOTH_SIZES
async def test_new_messages_are_added_to_a_log_region_without_replacing_it(
    browser: Any, chat: ChatServer, viewport: dict[str, int]
) -> None:
    room = room_name()
    ann_context, bob_context = await browser.new_context(viewport=viewport), await browser.new_context()
    ann, bob = await ann_context.new_page(), await bob_context.new_page()
    await sign_in(ann, chat.http, room, "Ann")
    await sign_in(bob, chat.http, room, "Bob")
    await say(bob, room, "first")
    await say(bob, room, "second")
    await expect(log(ann).get_by_text("second")).to_be_visible()

    region = log(ann)
    await expect(region).to_have_count(1)
    await expect(region).to_have_attribute("aria-live", "polite")
    await expect(region).to_have_attribute("aria-relevant", "additions")
    await expect(ann.get_by_role("log", name=f"#{room}")).to_have_count(1)
    marked = await ann.evaluate(
        """() => {
             const items = [...document.querySelectorAll("[role=log] li")];
             items.forEach((item, i) => { item.__seen = i; });
             return items.length;
           }"""
    )
    assert marked >= 3  # Ann joined, "first", "second"

    await say(bob, room, "third")
    await announce(chat, room, "an announcement")
    await say(bob, room, "fourth")
    await expect(log(ann).get_by_text("fourth")).to_be_visible()
    still = await ann.evaluate(
        """() => {
             const items = [...document.querySelectorAll("[role=log] li")];
             const old = items.filter((item) => item.__seen !== undefined);
             return {
               kept: old.length,
               connected: old.every((item) => item.isConnected),
               inOrder: old.every((item, i) => item.__seen === i),
               oldFirst: items.slice(0, old.length).every((item) => item.__seen !== undefined),
               added: items.length - old.length,
             };
           }"""
    )
    assert still == {"kept": marked, "connected": True, "inOrder": True, "oldFirst": True, "added": 3}, still
    await ann_context.close()
    await bob_context.close()


# Draw `text` with the font of `element`, black on transparent: any coloured pixel comes from a
# colour glyph. Returns how many coloured pixels each of `texts` has.
COLOURED_PIXELS = """async ([element, texts]) => {
  const style = getComputedStyle(element);
  const font = `${style.fontStyle} ${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
  await document.fonts.load(font, texts.join(""));
  const counts = {};
  for (const text of texts) {
    const canvas = document.createElement("canvas");
    canvas.width = 600;
    canvas.height = 100;
    const ctx = canvas.getContext("2d");
    ctx.font = font;
    ctx.textBaseline = "top";
    ctx.fillStyle = "#000";
    ctx.fillText(text, 10, 20);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let coloured = 0;
    for (let i = 0; i < data.length; i += 4) {
      const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
      if (a > 0 && (Math.abs(r - g) > 40 || Math.abs(g - b) > 40)) coloured += 1;
    }
    counts[text] = coloured;
  }
  return { counts, family: style.fontFamily };
}"""


@BOTH_SIZES
async def test_emoji_are_drawn_in_colour(browser: Any, chat: ChatServer, viewport: dict[str, int]) -> None:
    room = room_name()
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    await sign_in(page, chat.http, room, "Ann")
    await say(page, room, "hello 😀🎉")
    text = log(page).locator(".entry-text").filter(has_text="hello 😀🎉")
    await expect(text).to_be_visible()
    # The "sending…" line is replaced by the confirmed one when the server echoes it: a
    # handle taken just before reads a detached element (no font). Take it again then.
    for attempt in range(3):
        drawn = await text.evaluate_handle("(element) => element")
        try:
            result = await page.evaluate(COLOURED_PIXELS, [drawn, ["hello 😀🎉", "😀", "🎉", "hello 123"]])
            break
        except PlaywrightError:
            if attempt == 2:
                raise
            await page.wait_for_timeout(200)
    counts = result["counts"]
    assert "Noto Color Emoji" in result["family"]
    # Each emoji on its own: a font earlier in the stack with a black-and-white 😀 would fail.
    assert counts["hello 😀🎉"] > 0 and counts["😀"] > 0 and counts["🎉"] > 0, result
    assert counts["hello 123"] == 0, result  # the control: plain text has no colour
    await text.screenshot(path=str(ARTIFACTS / f"chat-emoji-{viewport['width']}.png"))
    await context.close()


# ------------------------------------------------------------------------------------- axe-core


def axe_script() -> Path:
    if not AXE.exists():
        unavailable(f"{AXE.relative_to(ROOT)} is missing: npm ci --prefix tests/js")
    return AXE


async def axe_violations(page: Any, view: str) -> list[str]:
    """Run axe-core on the page; its serious and critical violations, described for a reader."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.add_script_tag(path=str(axe_script()))
    violations = await page.evaluate(
        "axe.run(document, {resultTypes: ['violations']}).then((r) => r.violations)"
    )
    return [
        f"{view}: {v['id']} ({v['impact']}): {v['help']}: "
        + ", ".join(" ".join(n["target"]) for n in v["nodes"])
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@BOTH_SIZES
async def test_axe_finds_nothing_serious_on_any_view(
    browser: Any, chat: ChatServer, viewport: dict[str, int], scheme: str
) -> None:
    axe_script()  # skip (or fail under CI) before starting anything
    room, other = room_name(), room_name()
    phone = is_phone(viewport)
    found: list[str] = []
    bob_context = await browser.new_context()
    bob = await bob_context.new_page()
    await sign_in(bob, chat.http, room, "Bob")
    context = await browser.new_context(viewport=viewport, color_scheme=scheme)
    page = await context.new_page()
    seen = watch(page)
    name = f"{viewport['width']}-{scheme}"

    await page.goto(f"{chat.http}/rooms/{room}")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    found += await axe_violations(page, "sign-in")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert").filter(has_text="Enter a display name")).to_be_visible()
    found += await axe_violations(page, "sign-in with an error")
    await screenshot(page, f"chat-axe-sign-in-{name}")

    await page.get_by_label("Display name").fill("Ann")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("status")).to_have_text("Connected", timeout=10_000)
    # Every kind of line: others', mine, notices, an announcement; and an unread badge.
    await say(bob, room, "Hi Ann 👋")
    await say(page, room, "hello 😀🎉")
    await announce(chat, room, "Maintenance at noon")
    await expect(log(page).get_by_text("Maintenance at noon")).to_be_visible()
    if phone:
        await page.get_by_role("button", name="Rooms").click()
    await page.get_by_label("Join a room").fill(other)
    await page.get_by_role("button", name="Join", exact=True).click()
    await expect(page.get_by_role("heading", name=f"#{other}")).to_be_visible()
    # Bob comes to that room and goes: an offline member, listed beside the log (the phone's
    # one-line strip has no room for who is offline).
    await bob.get_by_label("Join a room").fill(other)
    await bob.get_by_role("button", name="Join", exact=True).click()
    await expect(log(page).get_by_text(f"Bob joined #{other}")).to_be_visible()
    await bob.get_by_role("button", name=f"Leave #{other}").click()
    await expect(log(page).get_by_text(f"Bob left #{other}")).to_be_visible()
    offline = page.locator("#offline-list li").filter(has_text="Bob")
    await expect(offline).to_have_count(1)
    await (expect(offline).to_be_hidden() if phone else expect(offline).to_be_visible())
    await expect(bob.get_by_role("heading", name=f"#{room}")).to_be_visible()
    await say(bob, room, "unread for Ann")
    await expect(page.get_by_role("button", name=re.compile(r"1 unread"))).to_be_visible()
    found += await axe_violations(page, "chat")
    await screenshot(page, f"chat-axe-chat-{name}")
    if phone:
        await page.get_by_role("button", name="Rooms").click()
        await expect(page.locator("#rooms-drawer")).to_be_visible()
        found += await axe_violations(page, "drawer open")
        await screenshot(page, f"chat-axe-drawer-{name}")
        await page.keyboard.press("Escape")

    await kick(chat, context)
    await expect(page.get_by_role("status")).to_have_text("Removed by an admin")
    await expect(page.get_by_role("alert").filter(has_text="An admin removed you")).to_be_visible()
    found += await axe_violations(page, "removed by an admin")
    await screenshot(page, f"chat-axe-removed-{name}")

    assert found == [], "axe-core violations:\n" + "\n".join(found)
    assert seen.page_errors == []
    await context.close()
    await bob_context.close()
