"""GC diagnostics for the server apps, off by default.

* ``BENCH_GC_STATS=1``: time spent in the garbage collector, per generation, written to the
  server log at exit (stderr);
* ``BENCH_GC_THRESHOLD=a,b,c``: ``gc.set_threshold(a, b, c)`` at import (to size how much of
  a scenario's cost is collection of a large heap);
* ``BENCH_BASE_HEAP=fastapi``: import FastAPI and build an app at import, unused, so that the
  raw floor's process carries a FastAPI app's heap (~48,000 objects against ~26,000) and every
  full collection walks it: what the framework's heap alone costs a scenario."""

from __future__ import annotations

import atexit
import gc
import os
import sys
import time

if os.environ.get("BENCH_BASE_HEAP") == "fastapi":
    import fastapi

    _unused_app = fastapi.FastAPI()

if os.environ.get("BENCH_GC_THRESHOLD"):
    gc.set_threshold(*(int(x) for x in os.environ["BENCH_GC_THRESHOLD"].split(",")))

if os.environ.get("BENCH_GC_STATS") == "1":
    _start: list[float] = [0.0]
    _stats = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}

    def _callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _start[0] = time.perf_counter()
        else:
            entry = _stats[info["generation"]]
            entry[0] += 1
            entry[1] += time.perf_counter() - _start[0]

    gc.callbacks.append(_callback)

    @atexit.register
    def _report() -> None:
        parts = [f"gen{g}: {n} collections, {t * 1000:.1f} ms" for g, (n, t) in _stats.items()]
        print("GC " + "; ".join(parts), file=sys.stderr, flush=True)
