"""The scenarios: which servers compete in each (the first variant is the baseline), the client's
load, and the rounds that run them interleaved.

Each `scenario_*` records every run it makes as a JSON line; `SCENARIOS` is the order of a full run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from config import BENCH, ROOT, SERVER_CPU, VENV_PY, Config, log
from report import Recorder, result_line
from servers import FASTLANE, ClientError, Server, Servers, ServerSpec, run_churned, run_client
from summary import DEFAULT_WINDOW, SHALLOW_VARIANTS

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Variant:
    """One contender in a scenario: a server (or two) and how the client talks to it."""

    name: str
    server: ServerSpec
    client: dict[str, Any] = field(default_factory=dict)
    sub_server: ServerSpec | None = None  # cross-process: subscribers on a second server


def keep(cfg: Config, variants: list[Variant]) -> list[Variant]:
    """Apply --variants; the first variant of every scenario is its baseline and always stays."""
    if not cfg.variants:
        return variants
    return [v for i, v in enumerate(variants) if i == 0 or v.name in cfg.variants]


def interleave(variants: list[Variant], rep: int) -> list[Variant]:
    return variants if rep % 2 == 0 else list(reversed(variants))


def run_rounds(
    rec: Recorder,
    cfg: Config,
    servers: Servers,
    scenario: str,
    params: dict[str, Any],
    variants: list[Variant],
    client_spec: dict[str, Any],
    reps: int,
    timeout: float,
) -> None:
    """Interleaved rounds: each round runs every variant once against its warm server."""
    variants = keep(cfg, variants)
    for rep in range(reps):
        for variant in interleave(variants, rep):
            t0 = time.monotonic()
            try:
                server = servers.get(variant.server)
                used = [server]
                spec = {**client_spec, **variant.client, "url": server.url}
                if variant.sub_server is not None:
                    sub = servers.get(variant.sub_server, 1)
                    used.append(sub)
                    spec["sub_url"] = sub.url
                if "churn" in spec:
                    result = run_churned(spec, used, timeout)
                else:
                    result = run_client(spec, used, timeout)
                error = None
            except (ClientError, RuntimeError) as exc:
                result, error = {}, str(exc)
            rec.add(
                {
                    "scenario": scenario,
                    "params": params,
                    "variant": variant.name,
                    "ws": variant.server.ws,
                    "group_ws": variants[0].server.ws,
                    "rep": rep,
                    "wall_s": time.monotonic() - t0,
                    "error": error,
                    **result,
                }
            )
            brief = result_line(scenario, result) if error is None else f"ERROR {error[:300]}"
            log(f"  {scenario} {params} {variant.name:<22} r{rep}: {brief}")


def echo_spec(cfg: Config, conns: int) -> dict[str, Any]:
    """The echo client's load: `conns` closed loops on ``/echo`` for the run's duration."""
    return {
        "scenario": "echo",
        "conns": conns,
        "path": "/echo",
        "duration": cfg.duration,
        "max_msgs": 2_000_000,
        "warmup": 0.3,
    }


def scenario_echo(rec: Recorder, cfg: Config, servers: Servers) -> None:
    conns_list = [1, 10, 100]
    for ws in cfg.ws_impls:
        variants = [
            Variant("raw", ServerSpec("bench.apps.raw", ws=ws)),
            Variant("wsroute", ServerSpec("bench.apps.wsroute_app", ws=ws)),
        ]
        if not cfg.quick:
            variants += [
                Variant("starlette", ServerSpec("bench.apps.starlette_app", ws=ws)),
                Variant("fastapi", ServerSpec("bench.apps.fastapi_app", ws=ws)),
                Variant(
                    "wsroute_bare", ServerSpec("bench.apps.wsroute_app", {"BENCH_WSROUTE_BARE": "1"}, ws=ws)
                ),
            ]
        # Calibration rows: the raw echo with N ns of busy work per message shows what a
        # microsecond of server Python per message costs end to end.
        spins = os.environ.get("BENCH_RAW_SPINS", "1000" if cfg.experiments else "")
        for spin in [int(x) for x in spins.split(",") if x]:
            spun = ServerSpec("bench.apps.raw", {"BENCH_RAW_SPIN_NS": str(spin)}, ws=ws)
            variants.append(Variant(f"exp:raw+{spin}ns", spun))
        sizes = conns_list if ws == "websockets-sansio" else [10]
        if cfg.smoke:
            sizes = sizes[:1]
        if os.environ.get("BENCH_ECHO_SIZES"):
            sizes = [int(x) for x in os.environ["BENCH_ECHO_SIZES"].split(",")]
        for conns in sizes:
            chosen = variants
            if cfg.quick and conns == 10:
                chosen = [
                    *variants,
                    Variant("starlette", ServerSpec("bench.apps.starlette_app", ws=ws)),
                    Variant("fastapi", ServerSpec("bench.apps.fastapi_app", ws=ws)),
                ]
            spec = echo_spec(cfg, conns)
            run_rounds(rec, cfg, servers, "echo", {"conns": conns}, chosen, spec, cfg.reps, cfg.duration + 40)
    servers.stop_all()


# Broadcasts in flight in the fan-out scenario (issue #18: the targets also at a shallow
# window). Windows other than `DEFAULT_WINDOW` (4) run `SHALLOW_VARIANTS` only.
FANOUT_WINDOWS = (1, 2, 4)


def fanout_variants(cfg: Config, subs: int, window: int = DEFAULT_WINDOW) -> list[Variant]:
    variants = [
        Variant("naive", ServerSpec("bench.apps.fastapi_app")),
        Variant("wsroute", ServerSpec("bench.apps.wsroute_app")),
    ]
    if not cfg.quick:
        variants += [
            Variant("raw_loop", ServerSpec("bench.apps.raw")),
            Variant("broadcaster", ServerSpec("bench.apps.broadcaster_app")),
            Variant("litestar", ServerSpec("bench.apps.litestar_app")),
            Variant("socketio", ServerSpec("bench.apps.socketio_app"), {"protocol": "socketio"}),
        ]
    if (ROOT / "wsroute" / "fastlane.py").exists():
        # wsroute's opt-in uvicorn protocol (websockets-sansio + a shared pre-encoded frame)
        variants.append(Variant("wsroute_fastlane", ServerSpec("bench.apps.wsroute_app", ws=FASTLANE)))
    if window != DEFAULT_WINDOW:
        variants = [v for v in variants if v.name in SHALLOW_VARIANTS]
    return variants


def fanout_spec(cfg: Config, subs: int, room: str, window: int = DEFAULT_WINDOW) -> dict[str, Any]:
    """The client's fan-out: `subs` subscribers of `room`, a window of `window` broadcasts of
    64 bytes in flight (the next is published when the oldest reached every subscriber), for
    `cfg.duration` seconds (bounded: 100,000 broadcasts, 5 s stall)."""
    return {
        "scenario": "fanout",
        "subs": subs,
        "room": room,
        "duration": cfg.duration,
        "max_broadcasts": 100_000,
        "window": window,
        "payload": 64,
        "warmup": 0.3,
        "stall": 5.0,
    }


def scenario_fanout(rec: Recorder, cfg: Config, servers: Servers) -> None:
    """Fan-out at 100/1000/5000 subscribers (quick: 1000), each size at 1, 2 and 4
    broadcasts in flight (`BENCH_FANOUT_SIZES`, `BENCH_FANOUT_WINDOWS` narrow it). Window 4
    runs every variant; windows 1 and 2 the baseline and the targets' variants
    (`SHALLOW_VARIANTS`). The window is in the recorded params."""
    sizes = [1000] if cfg.quick else [100, 1000, 5000]
    if cfg.smoke:
        sizes = sizes[:1]
    if os.environ.get("BENCH_FANOUT_SIZES"):
        sizes = [int(x) for x in os.environ["BENCH_FANOUT_SIZES"].split(",")]
    windows = list(FANOUT_WINDOWS)
    if os.environ.get("BENCH_FANOUT_WINDOWS"):
        windows = [int(x) for x in os.environ["BENCH_FANOUT_WINDOWS"].split(",")]
    for subs in sizes:
        for window in windows:
            spec = fanout_spec(cfg, subs, f"b{os.getpid()}", window)
            params = {"subs": subs, "window": window}
            variants = fanout_variants(cfg, subs, window)
            run_rounds(rec, cfg, servers, "fanout", params, variants, spec, cfg.reps, 180)
    servers.stop_all()


def scenario_connect(rec: Recorder, cfg: Config, servers: Servers) -> None:
    variants = [
        Variant("raw", ServerSpec("bench.apps.raw")),
        Variant("wsroute", ServerSpec("bench.apps.wsroute_app")),
        Variant("fastapi", ServerSpec("bench.apps.fastapi_app")),
    ]
    spec = {
        "scenario": "connect",
        "path": "/idle",
        "duration": min(cfg.duration, 2.0),
        "max_conns": 4000,
        "concurrency": 8,
        "warmup": 0.3,
    }
    run_rounds(rec, cfg, servers, "connect", {"concurrency": 8}, variants, spec, cfg.reps, 60)
    servers.stop_all()


def scenario_handshake(rec: Recorder, cfg: Config, servers: Servers) -> None:
    """Handshake rate (issue: "open → accepted with one cached guard, 1,000 connections, 100
    in flight: ≥ 0.85 times raw ASGI; the same for 1,000 multiplexed SUBSCRIBEs on one socket vs
    1,000 dedicated handshakes"): the client opens 1000 connections to ``/idle`` (smoke:
    100), at most 100 handshakes in flight, and holds them; the window spans from the first
    connect to the last accept; they are closed afterwards, outside it. ``wsroute``: the
    handler's guard ``User`` is built once per connection, at the handshake; ``fastapi``:
    one ``Depends``. ``wsroute_mux_subscribe``: ONE ``rocket-multiplex`` socket, then 1000
    SUBSCRIBEs to distinct topics ``/mx/1`` … (the same guard per topic), at most 100
    unanswered; the window spans from the first SUBSCRIBE to the last OK (its server allows
    that many topics per socket: ``BENCH_MAX_TOPICS``). All against raw; the servers are
    shared by the rounds (`connect` is the open + close churn). ``raw_fastapi_heap``: the raw
    app in a process that also imports FastAPI and builds an (unused) app, a context row: how
    much of the gap is the collector walking the framework's heap, not the connections."""
    conns = 100 if cfg.smoke else 1000
    mux_server = ServerSpec("bench.apps.wsroute_app", {"BENCH_MAX_TOPICS": str(conns + 64)})
    variants = [
        Variant("raw", ServerSpec("bench.apps.raw")),
        Variant("wsroute", ServerSpec("bench.apps.wsroute_app")),
        Variant("fastapi", ServerSpec("bench.apps.fastapi_app")),
        Variant("wsroute_mux_subscribe", mux_server, {"mux": True, "path_fmt": "/mx/{}"}),
        Variant("raw_fastapi_heap", ServerSpec("bench.apps.raw", {"BENCH_BASE_HEAP": "fastapi"})),
    ]
    spec = {
        "scenario": "handshake",
        "path": "/idle",
        "conns": conns,
        "concurrency": 100,
        "warmup_conns": 20,
        "max_seconds": 30.0,
    }
    params = {"conns": conns, "concurrency": 100}
    run_rounds(rec, cfg, servers, "handshake", params, variants, spec, cfg.reps, 90)
    servers.stop_all()


def scenario_multiplex(rec: Recorder, cfg: Config, servers: Servers) -> None:
    server = ServerSpec("bench.apps.wsroute_app")
    variants = [
        Variant("10_sockets", server, {"conns": 10, "topic_fmt": "/mx/{}"}),
        Variant("1_socket_10_topics", server, {"mux_topics": 10, "topic_fmt": "/mx/{}"}),
        # request/reply on `meta` topics: the handler's return value is the reply
        Variant(
            "1_socket_10_topics_request", server, {"mux_topics": 10, "topic_fmt": "/rq/{}", "request": True}
        ),
    ]
    spec = {"scenario": "echo", "duration": cfg.duration, "max_msgs": 2_000_000, "warmup": 0.3}
    run_rounds(rec, cfg, servers, "multiplex", {"topics": 10}, variants, spec, cfg.reps, cfg.duration + 40)
    servers.stop_all()


def scenario_memory(rec: Recorder, cfg: Config, servers: Servers) -> None:
    conns = 200 if cfg.smoke else 5000
    variants = [
        Variant("raw", ServerSpec("bench.apps.raw")),
        Variant("wsroute", ServerSpec("bench.apps.wsroute_app")),
    ]
    if not cfg.quick:
        variants.append(Variant("fastapi", ServerSpec("bench.apps.fastapi_app")))
    reps = 1 if cfg.quick or cfg.smoke else 3
    variants = keep(cfg, variants)
    for rep in range(reps):
        for variant in interleave(variants, rep):
            server = Server(variant.server, cfg.out)  # fresh process: a clean heap
            try:
                # Warm the code paths (imports, caches, first-connection allocations).
                run_client(
                    {
                        "scenario": "connect",
                        "url": server.url,
                        "path": "/idle",
                        "duration": 0.3,
                        "max_conns": 200,
                        "concurrency": 4,
                        "warmup": 0.0,
                    },
                    [server],
                    60,
                )
                time.sleep(0.5)
                base = server.rss()

                def on_ready(
                    msg: dict[str, Any], server: Server = server, base: int = base
                ) -> dict[str, Any]:
                    time.sleep(1.0)
                    held = server.rss()
                    return {
                        "rss_base": base,
                        "rss_held": held,
                        "bytes_per_conn": (held - base) / msg["open"],
                        "connect_s": msg["connect_s"],
                    }

                result = run_client(
                    {"scenario": "idle", "url": server.url, "path": "/idle", "conns": conns, "hold": 60},
                    [server],
                    120,
                    on_ready,
                )
                error = None
            except (ClientError, RuntimeError) as exc:
                result, error = {}, str(exc)
            finally:
                server.stop()
            rec.add(
                {
                    "scenario": "memory",
                    "params": {"conns": conns},
                    "variant": variant.name,
                    "ws": variant.server.ws,
                    "rep": rep,
                    "error": error,
                    **result,
                }
            )
            shown = (
                f"{result['bytes_per_conn'] / 1024:.1f} KiB/conn" if error is None else f"ERROR {error[:300]}"
            )
            log(f"  memory {conns} {variant.name:<22} r{rep}: {shown}")


RECONNECT_MODES = ("backoff", "at_once")


def scenario_reconnect(rec: Recorder, cfg: Config, servers: Servers) -> None:
    """The reconnect storm after a server restart (issue: "5,000 connected clients, each
    subscribed to one of 50 topics, the server restarted; clients reconnect with the JS
    client's backoff (jittered) and, separately, all at once: time until every client is
    subscribed and receiving again, against raw ASGI doing the same with no routing:
    ≤ 1.2 times. Memory after the storm back within 5% of before it").

    * Clients: 5000 dedicated sockets to ``/fan/r0`` … ``/fan/r49``, 100 a room (smoke: 200
      clients, 5 rooms); both apps serve ``/fan/{room}`` (subscribe) and ``/pub/{room}``
      (each text is broadcast to the room): raw with its plain set and loop, wsroute
      through its broker.
    * A fresh server each run. The client opens every socket (100 handshakes in flight),
      checks that each receives a message from its room's publisher, and says ``ready``;
      the runner waits 1 s and reads the server's RSS (``rss_before``), stops it (SIGINT,
      as `Server.stop`) and starts a new one on the same port (`Server.restart`, which
      returns once it listens), then writes "up" on the client's stdin. The clients see
      their sockets end when the server stops but reconnect only from "up": this measures
      the storm against a listening server, not the apps' import and start-up times.
    * ``backoff``: each client's n-th attempt (n = 0, 1, …) waits ``random() * min(10000,
      250 * 2**n)`` ms first (multiplex.js's defaults: full jitter, base 250 ms, cap 10 s),
      counted from "up" for the first attempt and from the failure for the next.
      ``at_once``: every client connects at "up" with no delay and no cap on the handshakes
      in flight (the storm), failures retried with the same backoff. The draws are fixed by
      (round, client, attempt), so raw and wsroute see the same delays.
    * Receiving again: a publisher socket per room, opened at "up" too (counted apart);
      once every client is open (bounded: 30 s), each room with a client that has not
      received anything since it reconnected gets one short message every 50 ms, until
      every client has (bounded: 30 s; ``never_received`` counts the others).
    * Results: ``recovered_ms`` (from "up" until the last client received: the measured
      window, the table's figure, ≤ 1.2 times raw), ``accepted_s`` (until the last accept),
      ``attempts``/``failures``/``retries``; then, 1 s after the recovery, the new server's
      RSS (``rss_after``) and ``rss_ratio`` = after / before (wsroute ≤ 1.05).

    Rounds: each round every mode, and in it raw and wsroute (interleaved); 3 rounds in a
    full run, 1 in quick and smoke runs."""
    clients, rooms = (200, 5) if cfg.smoke else (5000, 50)
    variants = keep(
        cfg,
        [
            Variant("raw", ServerSpec("bench.apps.raw")),
            Variant("wsroute", ServerSpec("bench.apps.wsroute_app")),
        ],
    )
    reps = 1 if cfg.quick or cfg.smoke else 3
    for rep in range(reps):
        for mode in RECONNECT_MODES:
            params = {"clients": clients, "rooms": rooms, "mode": mode}
            for variant in interleave(variants, rep):
                t0 = time.monotonic()
                server = Server(variant.server, cfg.out)
                seen: dict[str, Any] = {}

                def on_ready(
                    msg: dict[str, Any], server: Server = server, seen: dict[str, Any] = seen
                ) -> dict[str, Any]:
                    time.sleep(1.0)
                    if msg.get("phase") == "connected":
                        seen["rss_before"] = server.rss()
                        seen["stop_s"], seen["start_s"] = server.restart()
                    else:
                        seen["rss_after"] = server.rss()
                        seen["rss_ratio"] = seen["rss_after"] / seen["rss_before"]
                    return dict(seen)

                spec = {
                    "scenario": "reconnect",
                    "url": server.url,
                    "clients": clients,
                    "rooms": rooms,
                    "mode": mode,
                    "seed": 1000 + rep,
                    "connect_concurrency": 100,
                    "publish_every": 0.05,
                    "accept_timeout": 30.0,
                    "receive_timeout": 30.0,
                }
                try:
                    result = run_client(spec, [server], 90, on_ready)
                    error = None
                except (ClientError, RuntimeError, OSError) as exc:
                    result, error = {}, str(exc)
                finally:
                    server.stop()
                rec.add(
                    {
                        "scenario": "reconnect",
                        "params": params,
                        "variant": variant.name,
                        "ws": variant.server.ws,
                        "rep": rep,
                        "wall_s": time.monotonic() - t0,
                        "error": error,
                        **result,
                    }
                )
                brief = result_line("reconnect", result) if error is None else f"ERROR {error[:300]}"
                log(f"  reconnect {params} {variant.name:<8} r{rep}: {brief}")


def redis_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), 1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def scenario_redis(rec: Recorder, cfg: Config, servers: Servers) -> None:
    if not redis_available():
        log("  redis_fanout: skipped, no Redis answering at 127.0.0.1:6379")
        return
    if not (ROOT / "wsroute" / "broker" / "redis.py").exists():
        log("  redis_fanout: skipped, wsroute/broker/redis.py does not exist yet")
        return
    redis_ws = ServerSpec("bench.apps.wsroute_app", {"BENCH_BROKER": REDIS_URL})
    redis_bc = ServerSpec("bench.apps.broadcaster_app", {"BENCH_BROADCAST_URL": REDIS_URL})
    variants = [
        Variant("wsroute_memory", ServerSpec("bench.apps.wsroute_app")),
        Variant("wsroute_redis_2proc", redis_ws, sub_server=redis_ws),
        Variant("broadcaster_redis_2proc", redis_bc, sub_server=redis_bc),
    ]
    subs = 100 if cfg.smoke else 1000
    spec = fanout_spec(cfg, subs, f"r{os.getpid()}")
    run_rounds(rec, cfg, servers, "redis_fanout", {"subs": subs}, variants, spec, cfg.reps, 180)
    servers.stop_all()


# History (issue 16): its own Redis channel prefix, so that its keys never meet another user's.
HISTORY_REDIS_URL = f"{REDIS_URL}?channel_prefix=benchhist:"
HISTORY_SIZE = 100


def scenario_history_fanout(rec: Recorder, cfg: Config, servers: Servers) -> None:
    """Fan-out to a topic with history against the same fan-out without it, same run: the
    same app, one server started with ``BENCH_HISTORY`` (``ws.topic("/fan/{room}",
    history=100, history_ttl=600.0)``) and one without. The subscribers are plain dedicated
    sockets (history costs the publish path only); ``history_positions`` has them on
    ``rocket-multiplex`` sockets with ``meta,positions`` (every frame carries its offset)."""
    subs = 100 if cfg.smoke else 1000
    spec = fanout_spec(cfg, subs, f"h{os.getpid()}")
    hist = {"BENCH_HISTORY": str(HISTORY_SIZE)}
    memory = [
        Variant("no_history", ServerSpec("bench.apps.wsroute_app")),
        Variant("history", ServerSpec("bench.apps.wsroute_app", hist)),
        Variant(
            "history_positions", ServerSpec("bench.apps.wsroute_app", hist), {"protocol": "mux_positions"}
        ),
    ]
    run_rounds(
        rec, cfg, servers, "history_fanout", {"subs": subs, "broker": "memory"}, memory, spec, cfg.reps, 180
    )
    servers.stop_all()
    if not redis_available():
        log("  history_fanout redis: skipped, no Redis answering at 127.0.0.1:6379")
        return
    # Cross-process, as in the Redis scenario: subscribers on server B, publisher on server A.
    plain = ServerSpec("bench.apps.wsroute_app", {"BENCH_BROKER": HISTORY_REDIS_URL})
    stored = ServerSpec("bench.apps.wsroute_app", {"BENCH_BROKER": HISTORY_REDIS_URL, **hist})
    redis = [
        Variant("no_history", plain, sub_server=plain),
        Variant("history", stored, sub_server=stored),
    ]
    if not cfg.quick:
        redis.append(Variant("history_positions", stored, {"protocol": "mux_positions"}, sub_server=stored))
    params = {"subs": subs, "broker": "redis_2proc"}
    room = f"hr{os.getpid()}"
    run_rounds(rec, cfg, servers, "history_fanout", params, redis, {**spec, "room": room}, cfg.reps, 180)
    servers.stop_all()
    drop_history_keys()


def drop_history_keys() -> None:
    """Delete the Redis keys the history scenarios left (their prefix only; bounded)."""
    drop_keys("benchhist:*")


def scenario_history_storm(rec: Recorder, cfg: Config, servers: Servers) -> None:
    """The reconnect storm: 1000 multiplexed clients that missed 100 broadcasts resubscribe
    at once with ``since`` (``recover``), against the same clients resubscribing without it
    (``subscribe``, the baseline) and, for scale, the same 100 broadcasts delivered live to
    them (``live``). One server per broker with ``BENCH_HISTORY=100``; each client run uses
    a topic of its own."""
    clients = 100 if cfg.smoke else 1000
    spec = {
        "scenario": "storm",
        "clients": clients,
        "missed": HISTORY_SIZE,
        "room": f"s{os.getpid()}",
        "phase_timeout": 30.0,
    }
    hist = {"BENCH_HISTORY": str(HISTORY_SIZE)}
    brokers = [("memory", ServerSpec("bench.apps.wsroute_app", hist))]
    if redis_available():
        redis = ServerSpec("bench.apps.wsroute_app", {"BENCH_BROKER": HISTORY_REDIS_URL, **hist})
        brokers.append(("redis", redis))
    else:
        log("  history_storm redis: skipped, no Redis answering at 127.0.0.1:6379")
    for broker, server in brokers:
        variants = [
            Variant("subscribe", server, {"mode": "plain"}),
            Variant("recover", server, {"mode": "recover"}),
            Variant("live", server, {"mode": "live"}),
        ]
        params = {"clients": clients, "missed": HISTORY_SIZE, "broker": broker}
        run_rounds(rec, cfg, servers, "history_storm", params, variants, spec, cfg.reps, 120)
        servers.stop_all()
    if len(brokers) > 1:
        drop_history_keys()


def run_in_process(rec: Recorder, scenario: str, script: str, mode: str) -> dict[str, Any] | None:
    """Run an in-process benchmark script (`mode`, and the Redis URL when Redis answers),
    record its JSON result under `scenario` and return it (None, recorded, on a failure)."""
    args = [str(VENV_PY), str(BENCH / script), mode]
    if redis_available():
        args.append(REDIS_URL)
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if proc.returncode != 0:
        rec.add({"scenario": scenario, "error": proc.stderr[-2000:]})
        log(f"  {scenario}: ERROR {proc.stderr[-500:]}")
        return None
    result: dict[str, Any] = json.loads(proc.stdout)
    rec.add({"scenario": scenario, **result})
    return result


def scenario_history_memory(rec: Recorder, cfg: Config, servers: Servers) -> None:
    """Bytes of history per stored message (memory backend: tracemalloc; Redis: MEMORY USAGE)."""
    mode = "quick" if cfg.quick or cfg.smoke else "full"
    result = run_in_process(rec, "history_memory", "history_mem.py", mode)
    if result is None:
        return
    for size, m in result["memory"].items():
        log(
            f"  history memory, {size} B payload: {m['overhead_bytes_per_msg']:.0f} B/stored message beyond "
            f"the payload's str ({m['payload_str_bytes']:.0f} B); without history {m['no_history_bytes_per_msg']:.0f} B"  # noqa: E501
        )
    for broker, c in result.get("publish_us", {}).items():
        log(
            f"  history publish path, {broker}, us/broadcast: {json.dumps({k: round(v, 2) for k, v in c.items()})}"  # noqa: E501
        )
    for size, r in result.get("redis", {}).items():
        if isinstance(r, dict):
            log(
                f"  history memory, Redis, {size} B payload: {r['bytes_per_msg']:.0f} B/stored message (stream key)"  # noqa: E501
            )


# Presence: its own Redis channel prefix (this run's), so that its keys never meet another
# user's; deleted afterwards.
PRESENCE_PREFIX = f"benchpres{os.getpid()}:"
PRESENCE_REDIS_URL = f"{REDIS_URL}?channel_prefix={PRESENCE_PREFIX}"
PRESENCE_ENV = {"BENCH_PRESENCE": "1"}
# The servers without presence use rooms of their own, so that the previous run's leaves
# (flushed while the next run's first subscriber connects) never meet them. (They once broke
# a socket there: a process without `ws.topic` handed a presence diff to its subscribers as a
# message; fixed in the broker, tested in tests/test_presence_redis.py.)


def presence_brokers(cfg: Config, name: str) -> list[tuple[str, ServerSpec, ServerSpec, bool]]:
    """(broker, server without presence, server with it, cross-process): the memory broker,
    and Redis with the subscribers on a second process when Redis answers."""
    out = [
        (
            "memory",
            ServerSpec("bench.apps.wsroute_app"),
            ServerSpec("bench.apps.wsroute_app", PRESENCE_ENV),
            False,
        )
    ]
    if redis_available():
        url = {"BENCH_BROKER": PRESENCE_REDIS_URL}
        out.append(
            (
                "redis_2proc",
                ServerSpec("bench.apps.wsroute_app", url),
                ServerSpec("bench.apps.wsroute_app", {**url, **PRESENCE_ENV}),
                True,
            )
        )
    else:
        log(f"  {name} redis: skipped, no Redis answering at 127.0.0.1:6379")
    return out


def scenario_presence_fanout(rec: Recorder, cfg: Config, servers: Servers) -> None:
    """Fan-out to a topic with presence against the same fan-out without it, same run: one
    server started with ``BENCH_PRESENCE=1`` (``ws.topic("/fan/{room}", presence=True)`` and
    a ``join`` returning ``PresenceInfo``: every subscriber is a member) and one without.
    ``presence`` / ``no_presence``: plain dedicated sockets. ``presence_mux`` /
    ``mux_meta``: the subscribers on ``rocket-multiplex`` sockets, asking ``meta,presence``
    (the member list, then the diffs) against asking ``meta`` on the server without it.
    Redis: subscribers on server B, publisher on server A."""
    subs = 100 if cfg.smoke else 1000
    for broker, off, on, two in presence_brokers(cfg, "presence_fanout"):
        room = f"p{broker[0]}{os.getpid()}"
        plain = {"room": f"{room}-off"}  # see PRESENCE_ENV
        variants = [
            Variant("no_presence", off, plain, sub_server=off if two else None),
            Variant("presence", on, sub_server=on if two else None),
            Variant("mux_meta", off, {**plain, "protocol": "mux_meta"}, sub_server=off if two else None),
            Variant("presence_mux", on, {"protocol": "mux_presence"}, sub_server=on if two else None),
        ]
        spec = fanout_spec(cfg, subs, room)
        params = {"subs": subs, "broker": broker}
        run_rounds(rec, cfg, servers, "presence_fanout", params, variants, spec, cfg.reps, 180)
        servers.stop_all()
    drop_presence_keys()


CHURN_RATE = 500  # joins + leaves per second


def scenario_presence_churn(rec: Recorder, cfg: Config, servers: Servers) -> None:
    """Join/leave churn beside a fan-out: the fan-out of `scenario_presence_fanout`
    (1000 subscribers) while a second client process (`client.run_churn`) subscribes and
    unsubscribes the same topic on 256 multiplexed sockets at a paced 500 joins + leaves per
    second (at most 10 churners in at a time: each stays ~40 ms), from the fan-out's
    ``start`` mark to its ``end`` mark. Against the same fan-out without the churn, same
    server, same round (``presence``, the baseline). Context: the same pair without presence
    (``no_presence``), and with the fan-out's subscribers watching presence
    (``presence_watchers``: multiplexed, ``meta,presence``: they get every diff). The
    churners ask no presence themselves except in ``presence+churn_watching`` (each of its
    joins is sent the member list). ``presence+churn_elsewhere``: the same churn on another
    topic of the pattern (``/fan/<room>-elsewhere``, presence on, no broadcasts): the churn's
    cost without its churners being subscribers of the fan-out. ``presence+churn_frames``:
    the churn's frames alone — as many frames in and replies out, for a topic the socket is
    not on (``·INVALID·Not Subscribed``), no subscription: what the network and the server
    under the app cost. ``raw`` / ``raw+churn_frames`` (memory broker only): the raw ASGI
    floor's naive fan-out, alone and beside the same frames sent to its ``/echo`` on plain
    sockets: what those frames cost a server with no framework at all."""
    subs = 100 if cfg.smoke else 1000
    rate = int(os.environ.get("BENCH_CHURN_RATE", CHURN_RATE))
    churn = {
        "rate": rate,
        "pool": 256,
        "occupancy": 10,
        "max_seconds": cfg.duration + 30,
        "max_events": 100_000,
    }
    watching = {**churn, "options": "meta,presence"}
    elsewhere = {**churn, "room_suffix": "-elsewhere"}
    frames = {**churn, "frames_only": True}
    for broker, off, on, two in presence_brokers(cfg, "presence_churn"):
        b_on, b_off = (on if two else None), (off if two else None)
        mux = {"protocol": "mux_presence"}
        room = f"c{broker[0]}{os.getpid()}"
        plain = {"room": f"{room}-off"}  # see PRESENCE_ENV
        variants = [
            Variant("presence", on, sub_server=b_on),
            Variant("presence+churn", on, {"churn": churn}, sub_server=b_on),
            Variant("no_presence", off, plain, sub_server=b_off),
            Variant("no_presence+churn", off, {**plain, "churn": churn}, sub_server=b_off),
            Variant("presence_watchers", on, mux, sub_server=b_on),
            Variant("presence_watchers+churn", on, {**mux, "churn": churn}, sub_server=b_on),
            Variant("presence+churn_watching", on, {"churn": watching}, sub_server=b_on),
            Variant("presence+churn_elsewhere", on, {"churn": elsewhere}, sub_server=b_on),
            Variant("presence+churn_frames", on, {"churn": frames}, sub_server=b_on),
        ]
        if broker == "memory":
            raw = ServerSpec("bench.apps.raw")
            variants.append(Variant("raw", raw))
            variants.append(Variant("raw+churn_frames", raw, {"churn": {**churn, "echo": True}}))
        spec = fanout_spec(cfg, subs, room)
        params = {"subs": subs, "broker": broker, "churn_per_s": rate}
        run_rounds(rec, cfg, servers, "presence_churn", params, variants, spec, cfg.reps, 180)
        servers.stop_all()
    drop_presence_keys()


def drop_presence_keys() -> None:
    """Delete the Redis keys the presence scenarios left (this run's prefix only; bounded)."""
    if not redis_available():
        return
    drop_keys(f"{PRESENCE_PREFIX}*")


def drop_keys(pattern: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        cursor = 0
        for _ in range(10_000):
            cursor, keys = client.scan(cursor, match=pattern, count=1000)
            if keys:
                client.delete(*keys)
            if cursor == 0:
                break
    finally:
        client.close()


def scenario_presence_memory(rec: Recorder, cfg: Config, servers: Servers) -> None:
    """10,000 members in one topic, in-process (`bench/presence_mem.py`): the latency of
    ``broker.presence`` and ``broker.presence_stats``, memory backend and Redis; bytes per
    member (tracemalloc; Redis ``MEMORY USAGE``); µs per join and leave."""
    mode = "smoke" if cfg.smoke else "quick" if cfg.quick else "full"
    result = run_in_process(rec, "presence_memory", "presence_mem.py", mode)
    if result is None:
        return
    for broker, r in result["brokers"].items():
        if "error" in r:
            log(f"  presence {broker}: ERROR {r['error']}")
            continue
        log(
            f"  presence {broker}, {result['members']:,} members: "
            f"presence() p50 {r['presence_us']['p50']:,.0f} us "
            f"p99 {r['presence_us']['p99']:,.0f} us; presence_state() p50 {r['state_us']['p50']:,.0f} us; "
            f"presence_stats() p50 {r['stats_us']['p50']:,.1f} us "
            f"p99 {r['stats_us']['p99']:,.1f} us; {r['bytes_per_member']:,.0f} B/member; "
            f"join {r['track_us']:,.1f} us, leave {r['untrack_us']:,.1f} us"
        )


def scenario_micro(rec: Recorder, cfg: Config, servers: Servers) -> None:
    mode = "quick" if cfg.quick or cfg.smoke else "full"
    proc = subprocess.run(
        [str(VENV_PY), str(BENCH / "micro.py"), mode, str(SERVER_CPU)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if proc.returncode != 0:
        rec.add({"scenario": "micro", "error": proc.stderr[-2000:]})
        log(f"  micro: ERROR {proc.stderr[-500:]}")
        return
    result = json.loads(proc.stdout)
    rec.add({"scenario": "micro", **result})
    inj = result["injection"]
    log(
        f"  injection overhead, 3 params: {inj['overhead_three_us']['median']:.2f} us/event "
        f"(0 params {inj['overhead_zero_us']['median']:.2f}, yield dep {inj['overhead_event_dep_us']['median']:.2f})"  # noqa: E501
    )
    for key in ("asgi_echo", "asgi_echo_suspending"):
        log(
            f"  {key} in-process us/msg: {json.dumps({k: round(v, 2) for k, v in result[key]['us_per_msg'].items()})}"  # noqa: E501
        )
    log(
        f"  fan-out in-process us/delivery: {json.dumps({k: round(v, 2) for k, v in result['fanout']['us_per_delivery'].items()})}"  # noqa: E501
    )
    log(
        f"  memory in-process bytes/conn: {json.dumps({k: round(v['bytes_per_conn']) for k, v in result['memory'].items() if isinstance(v, dict)})}"  # noqa: E501
    )


# Echo and fan-out on the other ASGI servers that docs/deployment.md lists: wsroute against
# the floor of each on the same server (never one server against another).
OTHER_SERVERS = ("hypercorn", "granian")


def scenario_servers(rec: Recorder, cfg: Config, servers: Servers) -> None:
    """Echo and fan-out on hypercorn and granian (one worker, uvloop; see `servers.command`),
    each pair on the same server, the server in the params: echo at 10 connections, wsroute
    against the raw ASGI floor (``servers_echo``, the client of `scenario_echo`), and fan-out
    to 1000 subscribers with 4 broadcasts in flight, wsroute against the naive FastAPI-docs
    loop (``servers_fanout``, `fanout_spec`). The fastlane is a uvicorn protocol: not here.
    Smoke: 1 connection, 100 subscribers."""
    conns, subs = (1, 100) if cfg.smoke else (10, 1000)
    echo = echo_spec(cfg, conns)
    fanout = fanout_spec(cfg, subs, f"v{os.getpid()}")
    for server in OTHER_SERVERS:
        variants = [
            Variant("raw", ServerSpec("bench.apps.raw", server=server)),
            Variant("wsroute", ServerSpec("bench.apps.wsroute_app", server=server)),
        ]
        params = {"server": server, "conns": conns}
        run_rounds(rec, cfg, servers, "servers_echo", params, variants, echo, cfg.reps, cfg.duration + 40)
        variants = [
            Variant("naive", ServerSpec("bench.apps.fastapi_app", server=server)),
            Variant("wsroute", ServerSpec("bench.apps.wsroute_app", server=server)),
        ]
        params = {"server": server, "subs": subs, "window": fanout["window"]}
        run_rounds(rec, cfg, servers, "servers_fanout", params, variants, fanout, cfg.reps, 180)
        servers.stop_all()


SCENARIOS = {
    "micro": scenario_micro,
    "echo": scenario_echo,
    "fanout": scenario_fanout,
    "connect": scenario_connect,
    "handshake": scenario_handshake,
    "multiplex": scenario_multiplex,
    "memory": scenario_memory,
    "reconnect": scenario_reconnect,
    "redis": scenario_redis,
    # history and recovery (issue 16)
    "history_fanout": scenario_history_fanout,
    "history_storm": scenario_history_storm,
    "history_memory": scenario_history_memory,
    # presence
    "presence_fanout": scenario_presence_fanout,
    "presence_churn": scenario_presence_churn,
    "presence_memory": scenario_presence_memory,
    # other ASGI servers: echo and fan-out on hypercorn and granian
    "servers": scenario_servers,
}
