"""The public API under ``mypy --strict``: the package itself, user code, and user mistakes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def mypy(*targets: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("mypy", path=str(Path(sys.executable).parent)) is None and os.environ.get("CI") != "true":
        pytest.skip("mypy is not installed: pip install -e '.[test]'")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_user_code_type_checks_and_decorators_keep_signatures() -> None:
    result = mypy("tests/typecheck/user_app.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        'Revealed type is "def (data: user_app.Chat, room: str, user: user_app.User, '
        'channel: wsroute.channel.Channel[user_app.Chat]) -> typing.Coroutine[Any, Any, None]"'
    ) in result.stdout, result.stdout
    assert (
        'Revealed type is "def (room: str, status: wsroute.status.WebSocketStatus, '
        'broker: wsroute.broker.broker.Broker) -> typing.Coroutine[Any, Any, None]"'
    ) in result.stdout, result.stdout


def test_user_mistakes_are_type_errors() -> None:
    result = mypy("tests/typecheck/user_errors.py")
    assert result.returncode == 1
    assert 'Argument 1 to "send" of "Channel" has incompatible type "str"; expected "Chat"' in result.stdout
    assert "user_errors.py:20: error" in result.stdout, result.stdout
