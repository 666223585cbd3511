"""Instructions per connection, counted by callgrind: a measure the machine's noise cannot move.

The end-to-end handshake rounds swing by ±15% on the shared 2-core machines, more than the
changes being weighed. valgrind's callgrind counts the instructions a process executes, the
same count whatever else the machine does, so a change of a few per cent shows.

Each variant opens and closes ``/idle`` in process (``bench/micro.py``'s fake ``receive``
and ``send``: the ASGI app's own work, no server and no network), once ``n // 4`` times and
once ``n`` times, each under callgrind; the difference divided by ``3n/4`` is the
instructions of one open+close, without the interpreter's start-up and the app's import.

* ``raw`` — the raw ASGI app (the floor, the baseline of the ratios);
* ``wsroute`` — the bench's wsroute app: FastAPI, one async guard reading the query;
* ``wsroute_no_telemetry`` — the same with ``FastAPI(telemetry=…)`` all off
  (``BENCH_FASTAPI_TELEMETRY=off``): FastAPI's per-connection OpenTelemetry check, which
  runs in ``FastAPI.__call__`` before any of wsroute does.

    python3 bench/instructions.py [n]     # n = 2000 by default; ~2 minutes on 2 cores

Prints one JSON object: instructions per open+close of each variant, and each ÷ raw.
Instructions are not time (a cache miss costs more than an add), so this is a measure of
work for comparing changes, beside the end-to-end rounds, not a replacement for them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The bench's own virtualenv (`run.py --setup`): the apps' dependencies and uvloop.
PYTHON = ROOT / "bench" / ".venv" / "bin" / "python"
VARIANTS: dict[str, dict[str, str]] = {
    "raw": {},
    "wsroute": {},
    "wsroute_no_telemetry": {"BENCH_FASTAPI_TELEMETRY": "off"},
}
WARMUP = 300


async def child(variant: str, n: int) -> None:
    """Warm up, then `n` open+close cycles (each checked to have been accepted)."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    import micro

    if variant == "raw":
        from bench.apps.raw import app
    else:
        from bench.apps.wsroute_app import app

        await micro.started(app)
    await micro.cycles(app, "/idle", WARMUP)
    if n:
        await micro.cycles(app, "/idle", n)


def counted(variant: str, n: int, out_dir: str) -> int:
    """Instructions of a whole child process run under callgrind."""
    out = Path(out_dir) / f"{variant}-{n}.out"
    # The variant's own settings only (a BENCH_* left in the caller's shell would change the
    # app), and one hash seed for every process: start-up work that depends on it then
    # cancels out between the two counts.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env.update(VARIANTS[variant], PYTHONPATH=str(ROOT), PYTHONHASHSEED="0")
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
         str(PYTHON), __file__, "--child", variant, str(n)],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800,
    )  # fmt: skip
    match = re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no summary line in {out}")
    return int(match.group(1))


def main(n: int) -> None:
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    if not PYTHON.exists():
        sys.exit("no bench/.venv: run python3 bench/run.py --setup first")
    jobs = [(v, k) for v in VARIANTS for k in (n // 4, n)]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        totals = dict(zip(jobs, pool.map(lambda job: counted(*job, tmp), jobs), strict=True))
    per = {v: (totals[v, n] - totals[v, n // 4]) / (n - n // 4) for v in VARIANTS}
    print(
        json.dumps(
            {
                "n": n,
                "instructions_per_open_close": {v: round(x) for v, x in per.items()},
                "ratio_to_raw": {v: round(x / per["raw"], 2) for v, x in per.items()},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        asyncio.run(child(sys.argv[2], int(sys.argv[3])))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
