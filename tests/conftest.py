"""Shared fixtures: which uvicorn WebSocket implementations the integration tests run on, and
(from `support.browser`) a headless Chromium."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from wsroute.testing import WS_IMPLEMENTATIONS

pytest_plugins = ["support.browser"]


@pytest.fixture(params=WS_IMPLEMENTATIONS)
def ws_impl(request: pytest.FixtureRequest) -> str:
    """Each uvicorn WebSocket implementation in turn."""
    return str(request.param)
