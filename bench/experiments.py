"""Bench-only experiments: monkeypatches that size a proposed change to wsroute's hot paths.

These are NOT part of wsroute. Each one imitates a change the runtime could make, so the
benchmark can measure what it would buy before anyone writes it for real. The server app
applies them when ``BENCH_EXPERIMENT`` names them (comma-separated); the micro-benchmarks
apply them in-process.

* ``own_task`` — run each WebSocket connection in its own task (``_WebSocketEntry``
  awaits a task running the connection). Every time the connection waits for a message the
  task is suspended and later resumed *through every frame of its await chain*; under
  FastAPI that chain is uvicorn's ``run_asgi``, ProxyHeaders, ServerError, telemetry,
  body-limit and Starlette's own ``__call__`` before wsroute's own frames. A task of its
  own starts the chain at the connection. (``eager_push``, the other experiment once
  sized here, is now how `Outbox.push` works.)
"""

from __future__ import annotations

import asyncio
import os
from typing import Any


def own_task() -> None:
    from wsroute.routes import route_path
    from wsroute.routing import _WebSocketEntry

    async def in_task(self: Any, scope: Any, receive: Any, send: Any) -> None:
        await asyncio.ensure_future(self.ws.connect(scope, receive, send))

    def call(self: Any, scope: Any, receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and self.ws.table.matches_any(route_path(scope)):
            scope.setdefault("router", self.app_router)
            return in_task(self, scope, receive, send)
        return self.app(scope, receive, send)

    _WebSocketEntry.__call__ = call  # type: ignore[method-assign]


EXPERIMENTS = {"own_task": own_task}


def apply_from_env() -> list[str]:
    names = [n for n in os.environ.get("BENCH_EXPERIMENT", "").split(",") if n]
    for name in names:
        EXPERIMENTS[name]()
    return names
