"""Tools a test needs: missing, the test skips on a developer machine but fails under CI.

``.ci/run`` installs every one of them, so a skip there would hide a test that never ran.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True under ``CI=true`` (as ``.ci/run`` sets it)."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(message: str, *, ci_message: str | None = None) -> NoReturn:
    """Skip the test with `message`; under ``CI=true`` fail it (with `ci_message` if given)."""
    if in_ci():
        pytest.fail(ci_message or message)
    pytest.skip(message)
