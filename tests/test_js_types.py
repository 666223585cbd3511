"""Type-check the browser client: ``tsc -p tests/js`` (see tests/js/tsconfig.json).

It checks the JS modules of ``wsroute/static/`` by their JSDoc types, and that
``multiplex.d.ts`` declares what ``multiplex.js`` implements (tests/js/types.check.ts).

TypeScript is pinned in tests/js/package.json and its lockfile, installed by
``npm ci --prefix tests/js``. Without it (or with another version) the test is skipped on a
developer machine, but fails in CI (``CI=true``), where a skipped check would let the
declarations drift from the code unnoticed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

from support import ci

ROOT = Path(__file__).resolve().parent.parent
JS_TESTS = ROOT / "tests" / "js"
TYPESCRIPT = JS_TESTS / "node_modules" / "typescript"
INSTALL = "npm ci --prefix tests/js"


def unavailable(message: str) -> NoReturn:
    ci.unavailable(
        f"{message}: run `{INSTALL}`",
        ci_message=f"{message}, and CI=true: the type check must run in CI ({INSTALL})",
    )


def test_the_client_type_checks_and_matches_its_declarations() -> None:
    node = shutil.which("node")
    if node is None:
        unavailable("node is not on PATH")
    pinned = json.loads((JS_TESTS / "package.json").read_text())["devDependencies"]["typescript"]
    installed_manifest = TYPESCRIPT / "package.json"
    if not installed_manifest.exists():
        unavailable("typescript is not installed in tests/js/node_modules")
    installed = json.loads(installed_manifest.read_text())["version"]
    if installed != pinned:
        unavailable(f"tests/js/node_modules has typescript {installed}, not the pinned {pinned}")
    result = subprocess.run(
        [node, str(TYPESCRIPT / "bin" / "tsc"), "-p", "tests/js", "--pretty", "false"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (
        f"tsc -p tests/js exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
