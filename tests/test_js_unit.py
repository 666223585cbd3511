"""Run the browser client's node tests (``node --test tests/js/``) as part of pytest.

Without ``node`` the test is skipped on a developer machine, but fails in CI (``CI=true``),
where a silently skipped JS suite would hide a broken client.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from support.ci import unavailable

ROOT = Path(__file__).resolve().parent.parent


def test_node_unit_tests() -> None:
    node = shutil.which("node")
    if node is None:
        unavailable(
            "node is not on PATH: install Node.js 20+ to run tests/js/",
            ci_message="node is not on PATH, and CI=true: the JS client tests must run in CI",
        )
    result = subprocess.run(
        [node, "--test", "tests/js/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"node --test tests/js/ exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
