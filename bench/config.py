"""Where the benchmark's files live, which CPU each side gets, and the settings of one run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"
VENV_PY = VENV / "bin" / "python"
RESULTS = BENCH / "results"
PROFILES = BENCH / "profiles"
DOCS = ROOT / "docs" / "benchmarks.md"
# Server and client on different cores, so that neither measures the other's CPU time.
SERVER_CPU = 0
CLIENT_CPU = 1


@dataclass
class Config:
    quick: bool
    reps: int
    duration: float
    ws_impls: list[str]
    only: set[str] | None
    out: Path
    experiments: bool
    stamp: str
    variants: set[str] | None = None
    smoke: bool = False


def log(msg: str) -> None:
    print(msg, flush=True)
