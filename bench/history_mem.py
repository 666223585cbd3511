"""Memory of history per stored message (issue 16), in-process; prints one JSON object.

    bench/.venv/bin/python bench/history_mem.py [quick|full] [redis://127.0.0.1:6379/0]

Memory backend: tracemalloc around publishing N messages (text of `payload` bytes) into a
topic with ``history=N`` against the same into a topic without history; the payload strings
are built before tracing starts, so what is counted is what the ring keeps per message
beyond the payload's own ``str`` (whose size is reported next to it). The topic is
published to once before tracing, so its stream (epoch, deque) is not counted.

Redis backend (when a URL is given and answers): ``MEMORY USAGE`` of the topic's stream key
after N publications, divided by N, with a channel prefix of its own; the keys are deleted
afterwards.

Publish path (``publish_us``): µs per ``broadcast_to`` of a 100-byte text with no
subscriber, into a topic with ``history=100, history_ttl=600.0`` (and without the ttl)
against one without history (memory, and Redis: the Lua script against a plain PUBLISH,
one publication at a time, so a Redis figure is a round trip), the best of 3 passes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wsroute import Broker


def payloads(n: int, size: int, tag: str) -> list[str]:
    return [f"{tag}{i:08d}".ljust(size, "x") for i in range(n)]


async def traced_publish(history: int, n: int, size: int) -> dict[str, float]:
    broker = Broker("memory://")
    if history:
        broker.topic("/rooms/{room}", history=history, history_ttl=600.0)
    await broker.start()
    topic = "/rooms/a"
    await broker.broadcast_to(topic, "warm")  # the stream exists before tracing
    data = payloads(n, size, "h" if history else "n")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for text in data:
        await broker.broadcast_to(topic, text)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    await broker.stop()
    return {"bytes_per_msg": (after - before) / n, "payload_str_bytes": float(sys.getsizeof(data[0]))}


async def publish_cost(url: str, history: int, n: int, size: int, ttl: float | None = 600.0) -> float:
    """µs per `broadcast_to` with no subscriber: the publish path alone (the best of 3)."""
    prefix = f"benchhistpub{os.getpid()}:"
    broker = Broker(url if url.startswith("memory") else f"{url}?channel_prefix={prefix}")
    if history:
        broker.topic("/rooms/{room}", history=history, history_ttl=ttl)
    await broker.start()
    topic = f"/rooms/p{history}-{ttl}"
    data = payloads(n, size, "p")
    best = float("inf")
    try:
        for _ in range(3):
            t0 = time.perf_counter()
            for text in data:
                await broker.broadcast_to(topic, text)
            best = min(best, (time.perf_counter() - t0) / n * 1e6)
    finally:
        await broker.stop()
    if not url.startswith("memory"):
        import redis.asyncio as aioredis

        client = aioredis.from_url(url)
        try:
            await client.delete(f"{prefix}stream:{topic}", f"{prefix}position:{topic}")
        finally:
            await client.aclose()
    return best


async def redis_usage(url: str, n: int, size: int) -> dict[str, Any]:
    import redis.asyncio as aioredis

    prefix = f"benchhistmem{os.getpid()}:"
    broker = Broker(f"{url}?channel_prefix={prefix}")
    broker.topic("/rooms/{room}", history=n, history_ttl=600.0)
    await broker.start()
    topic = "/rooms/a"
    try:
        for text in payloads(n, size, "r"):
            await broker.broadcast_to(topic, text)
    finally:
        await broker.stop()
    client = aioredis.from_url(url)
    try:
        stream_key, position_key = f"{prefix}stream:{topic}", f"{prefix}position:{topic}"
        stream = await client.memory_usage(stream_key, samples=0)
        position = await client.memory_usage(position_key, samples=0)
        length = await client.xlen(stream_key)
        await client.delete(stream_key, position_key)
    finally:
        await client.aclose()
    return {
        "entries": length,
        "stream_bytes": stream,
        "position_bytes": position,
        "bytes_per_msg": (stream or 0) / max(1, length),
    }


async def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "quick"
    url = sys.argv[2] if len(sys.argv) > 2 else None
    n = 10_000 if mode == "quick" else 50_000
    out: dict[str, Any] = {"n": n, "memory": {}}
    for size in (100, 1000):
        with_history = [await traced_publish(n, n, size) for _ in range(3)]
        without = [await traced_publish(0, n, size) for _ in range(3)]
        best = min(with_history, key=lambda r: r["bytes_per_msg"])
        base = min(without, key=lambda r: r["bytes_per_msg"])
        out["memory"][str(size)] = {
            "history_bytes_per_msg": best["bytes_per_msg"],
            "no_history_bytes_per_msg": base["bytes_per_msg"],
            "overhead_bytes_per_msg": best["bytes_per_msg"] - base["bytes_per_msg"],
            "payload_str_bytes": best["payload_str_bytes"],
            "runs": [r["bytes_per_msg"] for r in with_history],
        }
    # the publish path alone, no subscriber: history=100 against none (100-byte text)
    out["publish_us"] = {
        "memory": {
            "no_history": await publish_cost("memory://", 0, n, 100),
            "history": await publish_cost("memory://", 100, n, 100),
            "history_no_ttl": await publish_cost("memory://", 100, n, 100, None),
        }
    }
    if url:
        try:
            out["redis"] = {str(size): await redis_usage(url, n, size) for size in (100,)}
            m = min(n, 5000)
            out["publish_us"]["redis"] = {
                "no_history": await publish_cost(url, 0, m, 100),
                "history": await publish_cost(url, 100, m, 100),
                "history_no_ttl": await publish_cost(url, 100, m, 100, None),
            }
        except Exception as exc:  # Redis absent or refusing: say so, keep the memory figures
            out["redis"] = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
