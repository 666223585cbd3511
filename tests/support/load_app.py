"""The app of `test_load.py`, served by a uvicorn subprocess
(``uvicorn --factory support.load_app:create_load_app --app-dir tests``)."""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import time
from typing import Any

from fastapi import FastAPI

from support.probe import task_names
from wsroute import WebSocketStatus, WsRouter


def create_load_app() -> FastAPI:
    """The app of `test_load.py`.

    * ``/feed``: receive-only clients; ``/flood``: a second topic for the client that never
      reads (it subscribes over a multiplexed socket); leaves are counted by close code.
    * ``POST /publish?topic=&count=&interval=&size=``: broadcasts ``count`` messages
      ``"<seq>:<due>:<padding>"`` ``interval`` seconds apart (``due``: the monotonic time in
      ns the message was scheduled for), then answers with the sequence numbers it used (one
      counter for all topics).
    * ``POST /gc``: a full garbage collection now (how long it took).
    * ``GET /stats``: topics, leaves by code (and when the latest of each code ran), live
      tasks, the queue length of ``/flood``'s subscriber, the pause of each automatic full
      garbage collection so far.
    """
    router = WsRouter(
        max_queue=int(os.environ.get("WSROUTE_LOAD_MAX_QUEUE", "256")),
        max_queue_bytes=int(os.environ.get("WSROUTE_LOAD_MAX_QUEUE_BYTES", str(1 << 20))),
    )
    leaves: collections.Counter[int] = collections.Counter()
    # When the latest leave of each code ran (monotonic ns, the clock the test process reads too).
    last_leave_ns: dict[int, int] = {}
    sequence = {"next": 0}
    # Pauses of the cyclic garbage collector's automatic full (generation 2) collections, in s.
    gc_pauses: list[float] = []
    gc_started = [0.0]
    explicit = [False]

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2 and not explicit[0]:
            if phase == "start":
                gc_started[0] = time.perf_counter()
            else:
                gc_pauses.append(time.perf_counter() - gc_started[0])

    gc.callbacks.append(gc_timer)

    @router.message("/feed")
    async def feed(data: str) -> None:
        pass

    @router.message("/flood")
    async def flood(data: str) -> None:
        pass

    @router.leave("/{rest:path}")
    async def left(status: WebSocketStatus) -> None:
        leaves[status.code] += 1
        last_leave_ns[status.code] = time.monotonic_ns()

    app = FastAPI()

    @app.post("/publish")
    async def publish(
        topic: str = "/feed", count: int = 1, interval: float = 0.0, size: int = 0
    ) -> dict[str, list[int]]:
        pad = "x" * size
        seqs = []
        # Each message carries the time it was due, not the time it went out: a stall of
        # the server delays the publishing too, and must still count as latency.
        start = time.monotonic_ns()
        for i in range(count):
            due = start + int(i * interval * 1e9)
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            seq = sequence["next"]
            sequence["next"] += 1
            seqs.append(seq)
            await router.broker.broadcast_to(topic, f"{seq}:{due}:{pad}")
        return {"seqs": seqs}

    @app.post("/gc")
    async def collect() -> dict[str, float]:
        started = time.perf_counter()
        explicit[0] = True
        try:
            gc.collect()
        finally:
            explicit[0] = False
        return {"seconds": time.perf_counter() - started}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return {
            "topics": router.broker.local_topics(),
            "leaves": {str(code): n for code, n in leaves.items()},
            "last_leave_ns": {str(code): ns for code, ns in last_leave_ns.items()},
            "tasks": task_names(exclude=asyncio.current_task()),
            # Longest outgoing queue among /flood's subscribers (the client that never reads).
            "gc_pauses": gc_pauses,
            "flood_queue": max(
                (len(getattr(sub, "outbox", ())) for sub in router.broker.subscribers("/flood")), default=0
            ),
        }

    router.install(app)
    return app
