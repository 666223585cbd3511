"""Headless Debian Chromium for the browser tests (driven by playwright; never downloaded)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
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
