"""Autobahn|Testsuite compliance: the fuzzingclient against the echo app on every protocol.

The run is slow (about 40 s, plus about 20 s the first time, to install the suite) and
needs a Python 2.7, so it runs only when asked:

    WSROUTE_AUTOBAHN=1 .venv/bin/python -m pytest tests/test_autobahn.py -s

It runs ``tests/autobahn/run.py`` (which can also be run by hand) and fails on what that
script fails on: a FAILED case other than the documented upstream 7.1.5 on websockets'
protocols, a fastlane result that differs from stock ``websockets-sansio``, an incomplete
run, or a traceback through wsroute in the server log. Without a Python 2.7 it skips.
See ``docs/autobahn.md``. The verdict itself is tested here on every run, on synthetic
results shaped like the real ones.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

RUNNER = Path(__file__).parent / "autobahn" / "run.py"
SKIPPED = "autobahn: skipped: "


def _load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("autobahn_run", RUNNER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


runner = _load_runner()


def _case(behavior: str, close: str = "OK", code: int | None = 1000) -> dict[str, Any]:
    return {"behavior": behavior, "behaviorClose": close, "remoteCloseCode": code}


def _runs(**overrides: dict[str, dict[str, Any]]) -> list[Any]:
    """A passing three-protocol result set (the shape of the real one), with `overrides`."""
    base = {
        "1.1.1": _case("OK"),
        "3.4": _case("OK", code=1002),
        "6.4.1": _case("NON-STRICT", code=1007),
        "7.1.5": _case("FAILED", "WRONG CODE", 1002),
    }
    wsproto = {**base, "6.4.1": _case("OK", code=None), "7.1.5": _case("OK")}
    results = {"websockets-sansio": base, "wsproto": wsproto, "fastlane": dict(base)}
    runs = []
    for label, cases in results.items():
        runs.append(runner.Run(label, runner.PROTOCOLS[label], results={**cases, **overrides.get(label, {})}))
    return runs


def test_verdict_passes_with_the_documented_upstream_failure_only() -> None:
    verdict = runner.judge(_runs())
    assert verdict.ok, verdict.problems
    assert verdict.failed == {"websockets-sansio": ["7.1.5"], "wsproto": [], "fastlane": ["7.1.5"]}
    assert verdict.differing == ["6.4.1", "7.1.5"]
    assert verdict.fastlane_mismatch == []


def test_verdict_fails_on_any_other_failed_case() -> None:
    verdict = runner.judge(_runs(wsproto={"1.1.1": _case("FAILED")}))
    assert not verdict.ok
    assert verdict.unexpected_failed["wsproto"] == ["1.1.1"]
    # 7.1.5 is expected only on the protocols built on websockets.
    assert not runner.judge(_runs(wsproto={"7.1.5": _case("FAILED", "WRONG CODE", 1002)})).ok


@pytest.mark.parametrize(
    "fastlane",
    [
        {"1.1.1": _case("NON-STRICT")},  # another behavior
        {"6.4.1": _case("NON-STRICT", code=1002)},  # another close code
        {"7.1.5": _case("OK")},  # passing where sansio fails is a difference too
        {"3.4": _case("FAILED", "WRONG CODE", 1002)},
    ],
)
def test_verdict_fails_when_the_fastlane_differs_from_stock_sansio(fastlane: dict[str, Any]) -> None:
    verdict = runner.judge(_runs(fastlane=fastlane))
    assert not verdict.ok
    assert len(verdict.fastlane_mismatch) == 1


def test_ok_and_non_strict_are_one_outcome_only_in_the_racing_cases() -> None:
    verdict = runner.judge(_runs(fastlane={"3.4": _case("NON-STRICT", code=1002)}))
    assert verdict.ok, verdict.problems
    assert verdict.raced == ["3.4"]
    assert not runner.judge(_runs(fastlane={"1.1.1": _case("NON-STRICT")})).ok


def test_verdict_fails_on_an_incomplete_run_or_a_wsroute_traceback() -> None:
    runs = _runs()
    runs[2].results = {}
    runs[2].error = "wstest did not finish within 300 s"
    assert not runner.judge(runs).ok
    runs = _runs()
    del runs[1].results["1.1.1"]
    assert runner.judge(runs).missing["wsproto"] == ["1.1.1"]
    assert not runner.judge(runs).ok
    runs = _runs()
    runs[0].wsroute_tracebacks.append("Traceback ...")
    assert not runner.judge(runs).ok


@pytest.mark.skipif(
    os.environ.get("WSROUTE_AUTOBAHN") != "1",
    reason="slow Autobahn|Testsuite run: set WSROUTE_AUTOBAHN=1 to run it "
    "(WSROUTE_AUTOBAHN=1 .venv/bin/python -m pytest tests/test_autobahn.py -s), "
    "or run python tests/autobahn/run.py",
)
def test_autobahn_fuzzingclient() -> None:
    done = subprocess.run(
        [sys.executable, str(RUNNER)],
        capture_output=True,
        text=True,
        timeout=1500,  # the runner bounds each protocol's wstest run to 300 s itself
    )
    print(done.stdout, done.stderr, sep="\n")
    skipped = [line for line in done.stdout.splitlines() if line.startswith(SKIPPED)]
    if done.returncode == 0 and skipped:
        pytest.skip(skipped[0][len(SKIPPED) :])
    assert done.returncode == 0, f"Autobahn run failed (exit {done.returncode}):\n{done.stdout[-6000:]}"
