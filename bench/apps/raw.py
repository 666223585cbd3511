"""Raw ASGI: the floor. No framework, no routing beyond a path prefix check.

* ``/echo``: echo loop straight on ``receive``/``send``;
* ``/fan/{room}`` + ``/pub/{room}``: a plain set of ``send`` callables and a sequential loop
  (the same shape as the FastAPI-docs ConnectionManager, without Starlette's WebSocket);
* anything else: accept and wait for the disconnect (used by the idle-memory and
  connection-rate scenarios).
"""

from __future__ import annotations

import os
import time
from typing import Any

import bench.apps._gcstats  # noqa: F401  (BENCH_GC_STATS=1: GC time in the server log)

# BENCH_RAW_SPIN_NS: busy work added per echoed message (calibration: what N ns of server
# Python per message costs end to end, compared with the same server without it).
_SPIN_NS = int(os.environ.get("BENCH_RAW_SPIN_NS", "0"))

_rooms: dict[str, dict[Any, None]] = {}


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(receive, send)
        return
    if kind != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    path: str = scope["path"]
    if path.startswith("/pub/"):
        subscribers = _rooms.setdefault("/fan/" + path[5:], {})
        while True:
            event = await receive()
            if event["type"] != "websocket.receive":
                return
            out = {"type": "websocket.send", "text": event.get("text")}
            for sub_send in tuple(subscribers):
                try:
                    await sub_send(out)
                except Exception:
                    subscribers.pop(sub_send, None)
    if path.startswith("/fan/"):
        subscribers = _rooms.setdefault(path, {})
        subscribers[send] = None
        try:
            while (await receive())["type"] != "websocket.disconnect":
                pass
        finally:
            subscribers.pop(send, None)
        return
    if path == "/echo":
        while True:
            event = await receive()
            if event["type"] == "websocket.receive":
                if _SPIN_NS:
                    end = time.perf_counter_ns() + _SPIN_NS
                    while time.perf_counter_ns() < end:
                        pass
                text = event.get("text")
                if text is not None:
                    await send({"type": "websocket.send", "text": text})
                else:
                    await send({"type": "websocket.send", "bytes": event.get("bytes")})
            elif event["type"] == "websocket.disconnect":
                return
    while (await receive())["type"] != "websocket.disconnect":
        pass
