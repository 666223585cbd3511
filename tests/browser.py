"""Headless Debian Chromium for the browser tests (driven by playwright; never downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
"""Screenshots go here (git ignores it): evidence for a reader, never an assertion."""


def require_chromium() -> None:
    """Skip when Chromium is missing, but fail under CI=true (where .ci/run installs it)."""
    if os.path.exists(CHROMIUM):
        return
    message = f"{CHROMIUM} is missing: apt-get install chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
