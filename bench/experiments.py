"""Bench-only experiments: monkeypatches that size a proposed change to wsroute's hot paths.

These are NOT part of wsroute. Each one imitates a change the runtime could make, so the
benchmark can measure what it would buy before anyone writes it for real. The server app
applies them when ``BENCH_EXPERIMENT`` names them (comma-separated); the micro-benchmarks
apply them in-process.

* ``own_task`` — run each WebSocket connection in its own task (``_WebSocketEntry.handle``
  awaits a task running the router). Every time the connection waits for a message the
  task is suspended and later resumed *through every frame of its await chain*; under
  FastAPI that chain is uvicorn's ``run_asgi``, ProxyHeaders, ServerError, telemetry,
  body-limit, ExceptionMiddleware, AsyncExitStack, the router and the route before
  wsroute's own frames. A task of its own starts the chain at ``WsRouter.__call__``.
* ``eager_push`` — ``Outbox.push`` on an idle socket (nothing queued, nothing being sent)
  runs the ASGI ``send`` coroutine right away and only hands it to a task if it actually
  suspends (uvicorn's send suspends only under TCP back-pressure). A broadcast then costs one
  ``send`` per subscriber, like the naive loop, instead of a future, a wake-up and a task
  step per subscriber; the bounded queue and the slow-consumer policy are unchanged.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Generator
from typing import Any


def own_task() -> None:
    from wsroute.routing import _WebSocketEntry

    async def handle(self: Any, scope: Any, receive: Any, send: Any) -> None:
        await asyncio.ensure_future(self.router(scope, receive, send))

    _WebSocketEntry.handle = handle  # type: ignore[method-assign]


class _Resume:
    """Await the rest of a coroutine that was already stepped once and yielded `first`."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        value = self.first
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # cancellation and the like go into the coroutine
                try:
                    value = self.coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = self.coro.send(sent)
                except StopIteration as stop:
                    return stop.value


def eager_outbox_class() -> type:
    """An `Outbox` subclass whose `push` sends at once on an idle socket (see ``eager_push``)."""
    from wsroute.outbox import Outbox

    async def finish(self: Any, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        try:
            await _Resume(coro, first)
        except Exception:
            self.abort()
            return
        finally:
            self._busy = False
        if self._queue:
            self._wake()

    class EagerOutbox(Outbox):
        __slots__ = ()

        def push(self, event: Any) -> None:
            if self.closed:
                return
            if self._busy or self._queue:
                super().push(event)
                return
            # Idle socket: send now, without a task, unless the send really has to wait.
            coro = self._send(event)
            try:
                first = coro.send(None)
            except StopIteration:
                return
            except Exception:
                self.abort()
                return
            self._busy = True
            asyncio.get_running_loop().create_task(finish(self, coro, first))

    return EagerOutbox


def eager_push() -> None:
    import wsroute.connection

    wsroute.connection.Outbox = eager_outbox_class()  # type: ignore[attr-defined,misc]


EXPERIMENTS = {"own_task": own_task, "eager_push": eager_push}


def apply_from_env() -> list[str]:
    names = [n for n in os.environ.get("BENCH_EXPERIMENT", "").split(",") if n]
    for name in names:
        EXPERIMENTS[name]()
    return names
