"""Bench-only experiments: monkeypatches that size a proposed change to wsroute's hot paths.

These are NOT part of wsroute. Each one imitates a change the runtime could make, so the
benchmark can measure what it would buy before anyone writes it for real. The server app
applies them when ``BENCH_EXPERIMENT`` names them (comma-separated); the micro-benchmarks
apply them in-process.

There is none at the moment. The last one, ``own_task`` (run each WebSocket connection in a
task of its own, so a message resumes the connection's frame instead of the server's,
middleware's and app's whole await chain), measured 0.92-0.94x the raw echo against
0.84-0.90x without it, and became how wsroute runs connections (``WsRouter.connect``).
``eager_push`` before it became how `Outbox.push` works.
"""

from __future__ import annotations

import os
from collections.abc import Callable

EXPERIMENTS: dict[str, Callable[[], None]] = {}


def apply_from_env() -> list[str]:
    names = [n for n in os.environ.get("BENCH_EXPERIMENT", "").split(",") if n]
    for name in names:
        EXPERIMENTS[name]()
    return names
