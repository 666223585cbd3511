"""In-process micro-benchmarks: no sockets, no server, only wsroute's own Python.

* ``injection`` — the cost wsroute adds per event: ``Session.on_message`` on a handler
  with three injected parameters (``Channel``, a guard, ``Broker``) plus the message,
  against awaiting the same function with the same arguments directly. Also the same with
  zero injected parameters, and with one event-scoped (yield) dependency, for context.
* ``asgi_echo`` — the whole server-side message path of the echo app, driven by a fake
  ``receive``/``send``: the raw ASGI echo app vs Starlette, FastAPI, wsroute installed on
  FastAPI, and the bare router. This is the framework's CPU per message with uvicorn and
  the network taken out, so it is far less noisy than the end-to-end echo. Measured twice:
  with a ``receive`` that never suspends, and with one that yields to the loop once per
  message (as under load), which adds the cost of resuming the app's whole await chain.
* ``handshakes`` — one connection opened and closed at once (``websocket.connect``, the
  accept, ``websocket.disconnect``), µs per cycle: the raw ASGI app against wsroute on
  FastAPI with one guard built at the handshake, ``async def``, a plain ``def`` with
  ``sync_to_thread = False`` (on the loop) and with ``True`` (Starlette's thread pool).

Prints one JSON object. Run by ``bench/run.py``; alone: ``python bench/micro.py``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi import Depends

from wsroute import Broker, Channel, Guard, HandshakeRequest, WsRouter
from wsroute.outbox import Outbox
from wsroute.session import Session


class User(Guard):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    async def from_request(cls, request: HandshakeRequest) -> User:
        return cls(request.query_params.get("user", "anon"))


async def per_event_db() -> AsyncIterator[int]:
    yield 1


def scope_for(path: str) -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"user=bench",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "scheme": "ws",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "subprotocols": [],
        "state": {},
        "extensions": {"websocket.http.response": {}},
    }


async def _noop_send(event: Any) -> None:
    return None


class _Socket:
    """A session's socket and an outbox's owner that close and evict nothing."""

    def evict(self) -> None:
        return None

    async def close_socket(self, code: int, reason: str) -> bool:
        return False

    async def close_session(self, session: Session, code: int, reason: str) -> bool:
        return False


_SOCKET = _Socket()


async def make_session(router: WsRouter, path: str) -> Session:
    outbox = Outbox(
        _noop_send, max_messages=1024, max_bytes=None, policy="disconnect", owner=_SOCKET
    )
    session = Session(
        table=router.table,
        settings=router.settings,
        broker=router.broker,
        scope=scope_for(path),
        outbox=outbox,
        socket=_SOCKET,
    )
    await session.handshake()
    return session


async def started(app: Any) -> None:
    """Send the app its lifespan startup, as a server does before the first connection (the
    broker starts; wsroute's entry moves in front of FastAPI's HTTP-only layers). The
    lifespan task stays alive until the process ends."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    _lifespans.append(asyncio.ensure_future(app(scope, inbox.get, replies.put)))
    await inbox.put({"type": "lifespan.startup"})
    reply = await asyncio.wait_for(replies.get(), 10)
    assert reply["type"] == "lifespan.startup.complete", reply


_lifespans: list[asyncio.Future[None]] = []


async def timed(fn: Callable[[], Awaitable[None]], n: int) -> float:
    """Seconds for `n` awaits of `fn()` (the loop is part of both sides of every comparison)."""
    t0 = time.perf_counter()
    for _ in range(n):
        await fn()
    return time.perf_counter() - t0


async def injection(n: int, reps: int) -> dict[str, Any]:
    router = WsRouter()

    @router.message("/three")
    async def three(data: str, channel: Channel, user: User, broker: Broker) -> None:
        return None

    @router.message("/zero")
    async def zero(data: str) -> None:
        return None

    @router.message("/event-dep")
    async def event_dep(
        data: str, channel: Channel, user: User, db: Annotated[int, Depends(per_event_db)]
    ) -> None:
        return None

    s3 = await make_session(router, "/three")
    s0 = await make_session(router, "/zero")
    se = await make_session(router, "/event-dep")
    user = await User.from_request(s3.request)
    channel, broker = s3.channel, router.broker

    cases: dict[str, Callable[[], Awaitable[None]]] = {
        "bare_three": lambda: three("hello", channel, user, broker),
        "wsroute_three": lambda: s3.on_message("hello", None),
        "bare_zero": lambda: zero("hello"),
        "wsroute_zero": lambda: s0.on_message("hello", None),
        "bare_event_dep": lambda: event_dep("hello", channel, user, 1),
        "wsroute_event_dep": lambda: se.on_message("hello", None),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    gc.disable()
    try:
        for _name, fn in cases.items():  # warm up
            await timed(fn, n // 10)
        for rep in range(reps):
            order = list(cases.items()) if rep % 2 == 0 else list(reversed(cases.items()))
            for name, fn in order:
                samples[name].append(await timed(fn, n) / n * 1e6)
    finally:
        gc.enable()
    out: dict[str, Any] = {
        "n": n,
        "reps": reps,
        "us_per_call": {k: statistics.median(v) for k, v in samples.items()},
    }
    for case in ("three", "zero", "event_dep"):
        diffs = [w - b for w, b in zip(samples[f"wsroute_{case}"], samples[f"bare_{case}"], strict=True)]
        out[f"overhead_{case}_us"] = {
            "median": statistics.median(diffs),
            "min": min(diffs),
            "max": max(diffs),
        }
    return out


# --- the whole ASGI message path, without uvicorn ---------------------------------------


class FakeSocket:
    """`n` text messages, then a disconnect; `send` never suspends. With `suspend`,
    ``receive`` yields to the event loop once per message, as it does under uvicorn when
    the client has not sent the next message yet: the task is then resumed through every
    frame of the app's await chain (middleware, routing, framework), which costs per frame."""

    def __init__(self, n: int, suspend: bool = False) -> None:
        self.suspend = suspend
        self.left = n
        self.sent = 0
        self.connected = False
        self.recv_event = {"type": "websocket.receive", "text": "x" * 32}

    async def receive(self) -> dict[str, Any]:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        if self.left:
            self.left -= 1
            if self.suspend:
                await asyncio.sleep(0)
            return self.recv_event
        return {"type": "websocket.disconnect", "code": 1000, "reason": ""}

    async def send(self, event: dict[str, Any]) -> None:
        self.sent += 1


async def drive(app: Any, path: str, n: int, suspend: bool = False) -> float:
    sock = FakeSocket(n, suspend)
    t0 = time.perf_counter()
    await app(scope_for(path), sock.receive, sock.send)
    elapsed = time.perf_counter() - t0
    assert sock.sent >= n, f"{path}: sent {sock.sent} of {n}"
    return elapsed / n * 1e6


async def asgi_echo(n: int, reps: int, suspend: bool) -> dict[str, Any]:
    import os

    from bench.apps import raw, starlette_app

    os.environ.pop("BENCH_WSROUTE_BARE", None)
    from bench.apps import fastapi_app, wsroute_app

    apps = {
        "raw": raw.app,
        "starlette": starlette_app.app,
        "fastapi": fastapi_app.app,
        "wsroute": wsroute_app.app,
        "wsroute_bare": wsroute_app._bare,
    }
    await started(wsroute_app.app)
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for _name, app in apps.items():
        await drive(app, "/echo", n // 10, suspend)
    gc.disable()
    try:
        for rep in range(reps):
            order = list(apps.items()) if rep % 2 == 0 else list(reversed(apps.items()))
            for name, app in order:
                samples[name].append(await drive(app, "/echo", n, suspend))
    finally:
        gc.enable()
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "n": n,
        "reps": reps,
        "suspend": suspend,
        "us_per_msg": med,
        "spread": {k: [min(v), max(v)] for k, v in samples.items()},
        "extra_over_raw_us": {k: v - med["raw"] for k, v in med.items()},
    }


# --- handshakes without the network ---------------------------------------------------------


def guard_app() -> Any:
    """wsroute on FastAPI: ``/g/<kind>``, each with a guard of that kind."""
    from fastapi import FastAPI

    class AsyncGuard:
        @classmethod
        async def from_request(cls, request: HandshakeRequest) -> AsyncGuard:
            return cls()

    class InlineGuard:
        sync_to_thread = False

        @classmethod
        def from_request(cls, request: HandshakeRequest) -> InlineGuard:
            return cls()

    class ThreadGuard:
        sync_to_thread = True

        @classmethod
        def from_request(cls, request: HandshakeRequest) -> ThreadGuard:
            return cls()

    ws = WsRouter()

    @ws.message("/g/async")
    async def with_async(data: str, guard: AsyncGuard) -> None:
        pass

    @ws.message("/g/inline")
    async def with_inline(data: str, guard: InlineGuard) -> None:
        pass

    @ws.message("/g/thread")
    async def with_thread(data: str, guard: ThreadGuard) -> None:
        pass

    app = FastAPI()
    ws.install(app)
    return app


def _open_then_close() -> Callable[[], Awaitable[dict[str, Any]]]:
    """An ASGI ``receive``: the connect, then the client's close."""
    events = iter(({"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}))

    async def receive() -> dict[str, Any]:
        return next(events)

    return receive


async def cycles(app: Any, path: str, n: int) -> float:
    """µs per open+close of `app` at `path`, each checked to have been accepted."""
    accepted = 0

    async def send(event: Any) -> None:
        nonlocal accepted
        accepted += event["type"] == "websocket.accept"

    scope = scope_for(path)
    t0 = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), _open_then_close(), send)
    elapsed = time.perf_counter() - t0
    assert accepted == n, f"{path}: {accepted} of {n} accepted"
    return elapsed / n * 1e6


async def handshakes(n: int, reps: int) -> dict[str, Any]:
    from bench.apps import raw

    app = guard_app()
    await started(app)
    cases = {
        "raw": (raw.app, "/echo"),
        "async_guard": (app, "/g/async"),
        "sync_inline": (app, "/g/inline"),
        "sync_thread": (app, "/g/thread"),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for target, path in cases.values():
        await cycles(target, path, n // 10)
    for rep in range(reps):
        order = list(cases.items()) if rep % 2 == 0 else list(reversed(cases.items()))
        for name, (target, path) in order:
            samples[name].append(await cycles(target, path, n))
    best = {k: min(v) for k, v in samples.items()}
    return {"n": n, "reps": reps, "us_per_cycle_best": best, "samples": samples}


# --- fan-out without the network ---------------------------------------------------------


async def fanout(subs: int, broadcasts: int, reps: int) -> dict[str, Any]:
    """µs per delivery: the naive ConnectionManager loop (Starlette WebSocket.send_text) vs
    wsroute's Broker.broadcast_to into per-connection outboxes."""
    from starlette.websockets import WebSocket, WebSocketState

    delivered = 0

    async def send(event: Any) -> None:
        nonlocal delivered
        delivered += 1

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    sockets = []
    for _ in range(subs):
        ws = WebSocket(scope_for("/fan/x"), receive, send)
        ws.client_state = ws.application_state = WebSocketState.CONNECTED
        sockets.append(ws)

    async def naive(message: str) -> None:
        for connection in sockets:
            await connection.send_text(message)

    routers: dict[str, WsRouter] = {}
    boxes: list[Outbox] = []
    for name, cls in (("wsroute", Outbox),):
        router = WsRouter()

        @router.message("/fan/{room}")
        async def sub(data: str) -> None:
            return None

        for _ in range(subs):
            box = cls(send, max_messages=1024, max_bytes=None, policy="disconnect", owner=_SOCKET)
            boxes.append(box)
            session = Session(
                table=router.table,
                settings=router.settings,
                broker=router.broker,
                scope=scope_for("/fan/x"),
                outbox=box,
                socket=_SOCKET,
            )
            await session.handshake()
            await session.subscribe()
        routers[name] = router

    async def run(name: str) -> float:
        nonlocal delivered
        delivered = 0
        message = "m" * 64
        t0 = time.perf_counter()
        if name == "naive":
            for _ in range(broadcasts):
                await naive(message)
        else:
            broker = routers[name].broker
            for _ in range(broadcasts):
                await broker.broadcast_to("/fan/x", message)
                while delivered < subs * (_ + 1):  # noqa: ASYNC110
                    await asyncio.sleep(0)
        elapsed = time.perf_counter() - t0
        assert delivered == subs * broadcasts, (name, delivered)
        return elapsed / (subs * broadcasts) * 1e6

    names = ["naive", "wsroute"]
    samples: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        await run(name)
    for rep in range(reps):
        for name in names if rep % 2 == 0 else list(reversed(names)):
            samples[name].append(await run(name))
    for router in routers.values():
        await router.broker.stop()
    for box in boxes:
        box.abort()
    await asyncio.sleep(0)
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "subs": subs,
        "broadcasts": broadcasts,
        "reps": reps,
        "us_per_delivery": med,
        "spread": {k: [min(v), max(v)] for k, v in samples.items()},
    }


# --- memory per idle connection, by allocation site -------------------------------------


async def memory(conns: int, top: int = 40) -> dict[str, Any]:
    """tracemalloc of `conns` idle connections held by each app (uvicorn's own per-connection
    objects excluded: they are the same for every app), grouped by allocation site."""
    import os
    import tracemalloc

    from bench.apps import fastapi_app, raw

    os.environ.pop("BENCH_WSROUTE_BARE", None)
    from bench.apps import wsroute_app

    await started(wsroute_app.app)
    out: dict[str, Any] = {"conns": conns}
    for name, app in (("raw", raw.app), ("fastapi", fastapi_app.app), ("wsroute", wsroute_app.app)):
        never = asyncio.get_running_loop().create_future()
        accepted = 0

        async def send(event: Any) -> None:
            nonlocal accepted
            if event["type"] == "websocket.accept":
                accepted += 1

        def make_receive() -> Any:
            first = True

            async def receive() -> Any:
                nonlocal first
                if first:
                    first = False
                    return {"type": "websocket.connect"}
                return await never  # noqa: B023

            return receive

        scopes = [scope_for("/idle") for _ in range(conns)]
        gc.collect()
        tracemalloc.start(16)
        before = tracemalloc.take_snapshot()
        tasks = [asyncio.ensure_future(app(scopes[i], make_receive(), send)) for i in range(conns)]
        while accepted < conns:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        stats = after.compare_to(before, "traceback")
        total = sum(st.size_diff for st in stats)
        # Attribute each allocation to the innermost frame in code we care about (so that
        # a deque made by contextlib for wsroute counts as wsroute's).
        by_site: dict[str, list[float]] = {}
        by_owner: dict[str, float] = {}
        for st in stats:
            if st.size_diff <= 0:
                continue
            site, owner = "other", "other"
            for frame in reversed(st.traceback):
                f = frame.filename
                for mark in ("/wsroute/", "/starlette/", "/fastapi/", "/bench/apps/", "/asyncio/"):
                    if mark in f:
                        owner = mark.strip("/")
                        site = f"{f.split(mark[:-1])[-1].lstrip('/')}:{frame.lineno}"
                        site = f"{owner}/{site}"
                        break
                else:
                    continue
                break
            entry = by_site.setdefault(site, [0.0, 0.0])
            entry[0] += st.size_diff
            entry[1] += st.count_diff
            by_owner[owner] = by_owner.get(owner, 0.0) + st.size_diff
        sites = [
            [site, round(size / conns), round(count / conns, 2)]
            for site, (size, count) in sorted(by_site.items(), key=lambda kv: -kv[1][0])[:top]
        ]
        out[name] = {
            "bytes_per_conn": total / conns,
            "by_owner": {k: round(v / conns) for k, v in sorted(by_owner.items(), key=lambda kv: -kv[1])},
            "top_sites": sites,
        }
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        del tasks, scopes
    return out


async def main(quick: bool) -> dict[str, Any]:
    n, reps = (50_000, 5) if quick else (200_000, 9)
    return {
        "injection": await injection(n, reps),
        "asgi_echo": await asgi_echo(n // 2, reps, suspend=False),
        "asgi_echo_suspending": await asgi_echo(n // 2, reps, suspend=True),
        "handshakes": await handshakes(3000, 3),
        "fanout": await fanout(1000, 20 if quick else 50, reps),
        "memory": await memory(1000 if quick else 2000),
    }


if __name__ == "__main__":
    import uvloop

    if len(sys.argv) > 2:
        import os

        os.sched_setaffinity(0, {int(sys.argv[2])})
    print(json.dumps(uvloop.run(main(len(sys.argv) > 1 and sys.argv[1] == "quick"))))
