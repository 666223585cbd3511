"""What a served app saw and what it has left behind, for tests that end connections badly.

A `Probe` records every leave. `install_state_route` adds ``GET /_debug/state`` to a test
app: what is alive on the server's event loop — asyncio tasks (by coroutine name), broker
topics with their subscriber counts, open outboxes and unfinished sessions — so a test can
assert that nothing was left behind (`clean`, `assert_back_to`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from support.processes import PLAIN_HTTP
from wsroute import WsRouter
from wsroute.outbox import Outbox
from wsroute.session import Session
from wsroute.testing import eventually

HOST = "127.0.0.1"


@dataclass
class Leave:
    """One leave seen by the server."""

    id: str
    topic: str
    code: int
    reason: str


@dataclass
class Probe:
    """What the server saw, read by the tests (the server may run in another thread)."""

    leaves: list[Leave] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    shutdown_state: dict[str, Any] | None = None

    def left(self, id_: str) -> list[Leave]:
        with self.lock:
            return [leave for leave in self.leaves if leave.id == id_]

    def record(self, id_: str, topic: str, code: int, reason: str) -> None:
        with self.lock:
            self.leaves.append(Leave(id_, topic, code, reason))


_EAGER_TASKS = frozenset({"wsroute join", "wsroute eager"})


def task_names(exclude: asyncio.Task[Any] | None = None) -> dict[str, int]:
    """Live asyncio tasks of the running loop, counted by coroutine name (by task name for a
    join or teardown that had to wait: `wsroute.eager` runs it on in a task of that name)."""
    counts: collections.Counter[str] = collections.Counter()
    for task in asyncio.all_tasks():
        if task is exclude:
            continue
        name = task.get_name()
        coro = task.get_coro()
        counts[name if name in _EAGER_TASKS else getattr(coro, "__qualname__", repr(coro))] += 1
    return dict(counts)


def session_left(session: Session) -> bool:
    """Whether the session's leave has run to its end (not merely started)."""
    return session.left


def live_objects() -> dict[str, int]:
    """Outboxes still open and sessions whose leave has not completed, anywhere in this process."""
    counts = _count_live()
    if any(counts.values()):
        # Some may be garbage not yet collected: count again after a collection. Only then:
        # a collection cannot find what the scan did not, and it costs ~0.1 s in this process,
        # which a test polling for a clean state paid on every poll.
        gc.collect()
        counts = _count_live()
    return counts


_PROXIES = (weakref.ProxyType, weakref.CallableProxyType)


def _count_live() -> dict[str, int]:
    outboxes = sessions = 0
    for obj in gc.get_objects():
        if type(obj) in _PROXIES:  # a proxy's isinstance is its object's, or an error if it died
            continue
        if isinstance(obj, Outbox):
            if not obj.closed:
                outboxes += 1
        elif isinstance(obj, Session) and not session_left(obj):
            sessions += 1
    return {"open_outboxes": outboxes, "unfinished_sessions": sessions}


def server_state(router: WsRouter) -> dict[str, Any]:
    """What is alive on the server's loop (call it on that loop)."""
    return {
        "tasks": task_names(exclude=asyncio.current_task()),
        "topics": router.broker.local_topics(),
        **live_objects(),
    }


def install_state_route(app: FastAPI, router: WsRouter) -> None:
    """``GET /_debug/state``: `server_state` of the running server."""

    @app.get("/_debug/state")
    async def state() -> dict[str, Any]:
        return server_state(router)


async def get_state(port: int) -> dict[str, Any]:
    """The server's `server_state`, over HTTP."""
    async with httpx.AsyncClient(trust_env=False, timeout=10, verify=PLAIN_HTTP) as http:
        response = await http.get(f"http://{HOST}:{port}/_debug/state")
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state


async def assert_back_to(port: int, baseline: Mapping[str, Any], timeout: float = 5.0) -> None:
    """Wait until the server's state equals `baseline` (no task, queue or subscription left)."""
    deadline = time.monotonic() + timeout
    while True:
        state = await get_state(port)
        if state == baseline:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"server state did not return to the baseline:\n{state}\n!=\n{baseline}")
        await asyncio.sleep(0.05)


async def quiet_state(port: int, timeout: float = 5.0) -> dict[str, Any]:
    """The server's state once no topic, open outbox or unfinished session is left: a
    connection the client has just closed finishes its leave on the server a moment later."""

    async def quiet() -> dict[str, Any] | None:
        state = await get_state(port)
        busy = state["topics"] or state["open_outboxes"] or state["unfinished_sessions"]
        return None if busy else state

    return await eventually(quiet, timeout, what="the server to have no connection left")


@contextlib.asynccontextmanager
async def clean(port: int, timeout: float = 5.0) -> AsyncIterator[dict[str, Any]]:
    """Take the server's state before the block (no topic, no open outbox); after it, require
    that state again: no task, queue, subscription or session left behind."""
    baseline = await get_state(port)
    assert baseline["topics"] == {} and baseline["open_outboxes"] == 0, baseline
    yield baseline
    await assert_back_to(port, baseline, timeout)


async def exactly_once(probe: Probe, id_: str, settle: float = 0.1, timeout: float = 5.0) -> Leave:
    """Wait for the leave of connection `id_`, then check no second one comes.

    `settle` must be longer than the slowest leave handler a duplicate would run: a second
    leave records only when its handler returns.
    """
    await eventually(lambda: bool(probe.left(id_)), timeout, what=f"leave of {id_}")
    await asyncio.sleep(settle)
    leaves = probe.left(id_)
    assert len(leaves) == 1, leaves
    return leaves[0]


def new_id() -> str:
    """A fresh connection id, for the app to record its leave under (``?id=``)."""
    return os.urandom(5).hex()
