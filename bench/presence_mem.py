"""Presence with 10,000 members in one topic, in-process; prints one JSON object.

    bench/.venv/bin/python bench/presence_mem.py [smoke|quick|full] [redis://127.0.0.1:6379/0]

For each backend (memory; Redis when a URL is given and answers, with a channel prefix of
its own whose keys are deleted afterwards), one `Broker` with ``presence=True`` on
``/rooms/{room}``:

* ``track_us``: µs per ``broker.track`` while adding the members one at a time (a join's
  presence work in its own task: the member into the topic's pending batch), then
  ``diff_send_ms``: the batch of all of them stored and announced (Redis: one script);
* ``presence_us``, ``state_us``, ``stats_us``: latency of ``await broker.presence(topic)``
  (every member, as `Member` objects), ``await broker.presence_state(topic)`` (the same as
  the JSON text a watcher is sent) and ``await broker.presence_stats(topic)`` (the counts),
  one call at a time, median / p90 / p99 / max, bounded in count and seconds; each call is
  checked to see every member;
* Redis: what a ``presence`` call is made of (the members script, which sweeps the dead
  processes' members and returns the rest as one JSON bulk string, and its parse into
  `Member` objects), each timed alone, medians, and the sweep alone for scale;
* ``state_encode_us``: `encode_state` of the members the backend returned (the best of 10):
  what the memory backend's ``presence_state`` does for a subscriber asking for presence
  (Redis sends the JSON its script built instead, timed in ``state_us``);
* ``untrack_us``: µs per ``broker.untrack``, removing every member (which also cleans up),
  then ``untrack_send_ms``, that batch stored and announced;
* memory: bytes per member. Memory backend: tracemalloc around adding the members to a bare
  `MemoryBackend` (``index``: its dicts and the users count, the `Member` objects built before
  tracing) and around building the members and adding them (``with_member``: the `Member`
  with its client id, user and info too; that object is what a session keeps). Redis:
  ``MEMORY USAGE`` (exact, ``SAMPLES 0``) of the topic's members hash, its users hash and the
  process's node hash, divided by the member count.

Members are ``Member("<node>.<i>", "user<i>", {"name": "User <i>"})``: one connection per
user, a small info.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wsroute import Broker
from wsroute.broker import redis_presence
from wsroute.broker.memory import MemoryBackend
from wsroute.presence import Member, encode_state

TOPIC = "/rooms/big"


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles of µs samples, and how many there were."""
    ordered = sorted(values)
    n = len(ordered)
    out = {f"p{p:g}": ordered[min(n - 1, int(p / 100 * n))] for p in (50, 90, 99)}
    out["max"] = ordered[-1]
    out["n"] = n
    return out


async def timed(
    call: Callable[[], Awaitable[Any]], check: Callable[[Any], bool], count: int, seconds: float
) -> dict[str, float]:
    """µs per `call`, one at a time: at most `count` calls and `seconds` (at least 5 calls)."""
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    for _ in range(count):
        t0 = time.perf_counter()
        result = await call()
        samples.append((time.perf_counter() - t0) * 1e6)
        if not check(result):
            raise RuntimeError(f"unexpected answer: {str(result)[:200]}")
        if len(samples) >= 5 and time.monotonic() > deadline:
            break
    return percentiles(samples)


def make_members(node: str, n: int) -> list[Member]:
    return [Member(f"{node}.{i}", f"user{i}", {"name": f"User {i}"}) for i in range(n)]


async def memory_bytes(n: int) -> dict[str, float]:
    """tracemalloc: bytes per member held by a bare MemoryBackend, with and without the
    Member objects themselves (the best of 3 each)."""
    index, whole = [], []
    for _ in range(3):
        backend = MemoryBackend()
        members = make_members("AbCdEf12", n)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for member in members:
            await backend.presence_add(TOPIC, member)
        gc.collect()
        index.append((tracemalloc.get_traced_memory()[0] - before) / n)
        tracemalloc.stop()
        del backend, members
        backend = MemoryBackend()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for member in make_members("AbCdEf12", n):
            await backend.presence_add(TOPIC, member)
        gc.collect()
        whole.append((tracemalloc.get_traced_memory()[0] - before) / n)
        tracemalloc.stop()
        del backend
    return {"index": min(index), "with_member": min(whole), "index_runs": index, "with_member_runs": whole}


async def one_backend(url: str, n: int, mode: str) -> dict[str, Any]:
    redis = not url.startswith("memory")
    prefix = f"benchpresmem{os.getpid()}:"
    broker = Broker(f"{url}?channel_prefix={prefix}" if redis else url)
    broker.topic("/rooms/{room}", presence=True)
    await broker.start()
    out: dict[str, Any] = {}
    try:
        members = make_members(broker.node, n)
        t0 = time.perf_counter()
        for member in members:
            await broker.track(TOPIC, member)
        out["track_us"] = (time.perf_counter() - t0) / n * 1e6
        t0 = time.perf_counter()
        await broker.wait_presence_sent()
        out["diff_send_ms"] = (time.perf_counter() - t0) * 1e3
        small = mode == "smoke"
        # bounded: calls and seconds
        count, seconds = (20, 2.0) if small else ((100, 20.0) if redis else (500, 10.0))
        listing = lambda: broker.presence(TOPIC)  # noqa: E731
        out["presence_us"] = await timed(listing, lambda r: len(r) == n, count, seconds)
        out["state_us"] = await timed(
            lambda: broker.presence_state(TOPIC), lambda r: len(orjson.loads(r)) == n, count, seconds
        )
        count, seconds = (50, 2.0) if small else ((500, 10.0) if redis else (2000, 5.0))
        out["stats_us"] = await timed(
            lambda: broker.presence_stats(TOPIC), lambda r: r.clients == n and r.users == n, count, seconds
        )
        listed = await broker.presence(TOPIC)
        state = encode_state(listed)
        best = float("inf")
        for _ in range(10):
            t0 = time.perf_counter()
            encode_state(listed)
            best = min(best, time.perf_counter() - t0)
        out["state_encode_us"] = best * 1e6
        out["state_bytes"] = len(state.encode())
        if redis:
            out["presence_parts_us"] = await redis_parts(broker, n, small)
            out.update(await redis_usage(url, prefix, broker.backend.node_id, n))  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        for member in members:
            await broker.untrack(TOPIC, member.client_id)
        out["untrack_us"] = (time.perf_counter() - t0) / n * 1e6
        t0 = time.perf_counter()
        await broker.wait_presence_sent()
        out["untrack_send_ms"] = (time.perf_counter() - t0) * 1e3
        left = await broker.presence_stats(TOPIC)
        out["left_after_untrack"] = left.clients
    finally:
        await broker.stop()
        if redis:
            await drop_keys(url, prefix)
    return out


async def redis_parts(broker: Broker, n: int, small: bool) -> dict[str, float]:
    """Medians of the steps of a Redis ``presence`` call, each alone."""
    backend: Any = broker.backend
    members_key, _ = redis_presence.topic_keys(backend._prefix, TOPIC)
    sweep = await timed(backend.sweep, lambda r: r == 0, 10 if small else 200, 5.0)
    script = redis_presence.MEMBERS_SCRIPT
    args = (2, members_key, redis_presence.nodes_key(backend._prefix), backend._prefix, b"1")
    read = await timed(
        lambda: backend._run("read the presence of", script, args),
        lambda r: r[0] == [] and isinstance(r[1], bytes),
        10 if small else 50,
        10.0,
    )
    _, state = await backend._run("read the presence of", script, args)

    async def parse() -> list[Member]:
        return redis_presence.parse_members(state)

    parsed = await timed(parse, lambda r: len(r) == n, 10 if small else 50, 10.0)
    return {"sweep": sweep["p50"], "members_script": read["p50"], "parse_members": parsed["p50"]}


async def redis_usage(url: str, prefix: str, node: str, n: int) -> dict[str, Any]:
    import redis.asyncio as aioredis

    members_key, users_key = redis_presence.topic_keys(prefix.encode(), TOPIC)
    node_key = redis_presence.node_key(prefix.encode(), node)
    client = aioredis.from_url(url)
    try:
        sizes = {
            "members_hash": await client.memory_usage(members_key, samples=0),
            "users_hash": await client.memory_usage(users_key, samples=0),
            "node_hash": await client.memory_usage(node_key, samples=0),
        }
        encoding = (await client.object("encoding", members_key)) or b""
    finally:
        await client.aclose()
    return {
        "redis_bytes": sizes,
        "members_hash_encoding": encoding.decode() if isinstance(encoding, bytes) else str(encoding),
        "bytes_per_member": sum(v or 0 for v in sizes.values()) / n,
        "members_hash_bytes_per_member": (sizes["members_hash"] or 0) / n,
    }


async def drop_keys(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        cursor = 0
        for _ in range(10_000):
            cursor, keys = await client.scan(cursor, match=f"{prefix}*", count=1000)
            if keys:
                await client.delete(*keys)
            if cursor == 0:
                break
    finally:
        await client.aclose()


async def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "quick"
    url = sys.argv[2] if len(sys.argv) > 2 else None
    n = 1000 if mode == "smoke" else 10_000
    out: dict[str, Any] = {"members": n, "brokers": {}}
    memory = await one_backend("memory://", n, mode)
    sizes = await memory_bytes(n)
    memory["bytes_per_member"] = sizes["with_member"]
    memory["memory_bytes"] = sizes
    out["brokers"]["memory"] = memory
    if url:
        try:
            out["brokers"]["redis"] = await one_backend(url, n, mode)
        except Exception as exc:  # Redis absent or refusing: say so, keep the memory figures
            out["brokers"]["redis"] = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
