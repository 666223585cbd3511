"""Headless Debian Chromium for the browser tests (driven by playwright; never downloaded)."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.ci import unavailable

CHROMIUM = "/usr/bin/chromium"
# Background networking off: this machine's network is closed, and Chromium would
# otherwise keep trying (and logging) requests to hosts outside 127.0.0.1.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
"""Screenshots go here (git ignores it): evidence for a reader, never an assertion."""


def require_chromium() -> None:
    """Skip when Chromium is missing, but fail under CI=true (where .ci/run installs it)."""
    if not os.path.exists(CHROMIUM):
        unavailable(f"{CHROMIUM} is missing: apt-get install chromium")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A launched headless Chromium, closed after the test (tests/conftest.py registers it)."""
    playwright_api = pytest.importorskip("playwright.async_api")
    require_chromium()
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Watched:
    """What a page did that the test checks at the end (`watch`)."""

    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    closed_sockets: list[str] = field(default_factory=list)

    def unexpected_console(self, *allowed: re.Pattern[str]) -> list[str]:
        return [text for text in self.console_errors if not any(p.search(text) for p in allowed)]


def watch(page: Any) -> Watched:
    """Record `page`'s errors, console errors and WebSockets from now on."""
    watched = Watched()
    page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
    page.on("console", lambda msg: watched.console_errors.append(msg.text) if msg.type == "error" else None)

    def on_socket(ws: Any) -> None:
        watched.sockets.append(ws.url)
        ws.on("close", lambda _ws: watched.closed_sockets.append(ws.url))

    page.on("websocket", on_socket)
    return watched
