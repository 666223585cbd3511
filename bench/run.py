"""wsroute benchmark runner: starts the servers, drives the load client, prints ratios.

    python bench/run.py --setup      # create bench/.venv (requirements.txt + wsroute[redis])
    python bench/run.py --quick      # about two minutes: the targets, fewer repeats
    python bench/run.py              # the full suite; writes bench/results/* and docs/benchmarks.md
    python bench/run.py --profile    # py-spy profiles of the wsroute hot paths -> bench/profiles/

Every result is a ratio against a baseline measured in the same run: the variants of a
scenario are run interleaved (A, B, A, B, … with the order reversed every other round) and
repeated; the table shows the median of the per-round ratios and their spread (min–max).
Servers are uvicorn (one worker, uvloop, httptools, ``--ws websockets-sansio`` unless
stated) on 127.0.0.1, pinned to CPU 0; the load client (picows on uvloop) runs in its own
process pinned to CPU 1. The CPU seconds both used inside each measured window are
recorded, so a reader can see which side was saturated.
"""

# ruff: noqa: RUF001, RUF002, RUF003  (×, –, µ and · are meant: they are printed)

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"
VENV_PY = VENV / "bin" / "python"
RESULTS = BENCH / "results"
PROFILES = BENCH / "profiles"
DOCS = ROOT / "docs" / "benchmarks.md"
SERVER_CPU = 0
CLIENT_CPU = 1
REDIS_URL = "redis://127.0.0.1:6379/0"
FASTLANE = "wsroute.fastlane:FastlaneProtocol"


# --- setup ----------------------------------------------------------------------------------


def setup() -> None:
    """Create bench/.venv from bench/requirements.txt plus an editable wsroute[redis]."""
    if not VENV_PY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV_PY), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", str(BENCH / "requirements.txt"), "-e", f"{ROOT}[redis]"], check=True)
    print(f"bench venv ready: {VENV_PY}")


def ensure_venv_python() -> None:
    """Re-run this script with the bench venv's Python (it has psutil, picows, the peers)."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not VENV_PY.exists():
        sys.exit("bench/.venv is missing: run `python bench/run.py --setup` first")
    os.execv(str(VENV_PY), [str(VENV_PY), *sys.argv])


# --- servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerSpec:
    """How to start one server: an app module and its environment."""

    module: str
    env: dict[str, str] = field(default_factory=dict)
    ws: str = "websockets-sansio"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.module, json.dumps(self.env, sort_keys=True), self.ws)


class Server:
    """One uvicorn process, one worker, pinned to the server CPU."""

    def __init__(self, spec: ServerSpec, log_dir: Path) -> None:
        self.spec = spec
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        name = spec.module.rsplit(".", 1)[-1] + "".join(f"-{v.split(':')[0]}" for v in spec.env.values())
        self.log_path = log_dir / f"server-{name}-{spec.ws.replace(':', '.')}-{self.port}.log"
        env = {**os.environ, **spec.env, "PYTHONPATH": str(ROOT)}
        env.pop("PYTHONASYNCIODEBUG", None)
        cmd = [
            str(VENV_PY),
            "-m",
            "uvicorn",
            f"{spec.module}:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ws",
            spec.ws,
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
            "--lifespan",
            "auto",
        ]
        self.log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        os.sched_setaffinity(self.proc.pid, {SERVER_CPU})
        import psutil

        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {spec.module} exited: see {self.log_path}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server {spec.module} did not listen within 30 s")
            time.sleep(0.05)

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def runq_wait(self) -> float:
        """Seconds the server's event-loop thread was runnable but not running (CPU taken)."""
        try:
            with open(f"/proc/{self.proc.pid}/schedstat") as f:
                return int(f.read().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class Servers:
    """Servers shared by the variants of a scenario, started on first use."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[tuple[str, str, str], list[Server]] = {}

    def get(self, spec: ServerSpec, index: int = 0) -> Server:
        pool = self.running.setdefault(spec.key, [])
        while len(pool) <= index:
            pool.append(Server(spec, self.log_dir))
        return pool[index]

    def stop_all(self) -> None:
        for pool in self.running.values():
            for server in pool:
                server.stop()
        self.running.clear()


# --- running the client ---------------------------------------------------------------------


class ClientError(RuntimeError):
    pass


def run_client(
    spec: dict[str, Any], servers: list[Server], timeout: float, on_ready: Any = None, on_start: Any = None
) -> dict[str, Any]:
    """Run one client process; sample the servers' CPU at its start/end marks."""
    spec = {**spec, "cpu": CLIENT_CPU}
    proc = subprocess.Popen(
        [str(VENV_PY), str(BENCH / "client.py"), json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    cpu0: list[float] = []
    cpu1: list[float] = []
    wait0: list[float] = []
    wait1: list[float] = []
    result: dict[str, Any] | None = None
    extra: dict[str, Any] = {}
    try:
        assert proc.stdout is not None and proc.stdin is not None
        for line in proc.stdout:
            msg = json.loads(line)
            mark = msg.get("mark")
            if mark == "start":
                if on_start is not None:
                    on_start()
                cpu0 = [s.cpu() for s in servers]
                wait0 = [s.runq_wait() for s in servers]
            elif mark == "end":
                cpu1 = [s.cpu() for s in servers]
                wait1 = [s.runq_wait() for s in servers]
            elif mark == "ready":
                extra = on_ready(msg) if on_ready else {}
                proc.stdin.write("\n")
                proc.stdin.flush()
            elif "result" in msg:
                result = msg["result"]
        proc.wait(30)
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
    if result is None:
        err = proc.stderr.read() if proc.stderr else ""
        raise ClientError(f"client failed (exit {proc.returncode}): {err.strip()[-2000:]}")
    if cpu0 and cpu1:
        result["server_cpu_s"] = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
        window = result.get("window_s") or 1.0
        result["server_cpu_util"] = [round(c / window, 3) for c in result["server_cpu_s"]]
        result["client_cpu_util"] = round(result.get("client_cpu_s", 0.0) / window, 3)
        result["server_runq_wait_s"] = [b - a for a, b in zip(wait0, wait1, strict=True)]
        # Share of the window some process stole from our server or client: noise, not us.
        result["contention"] = round(
            max([*result["server_runq_wait_s"], result.get("client_runq_wait_s", 0.0)]) / window, 3
        )
    result.update(extra)
    return result


# --- scenarios ------------------------------------------------------------------------------


@dataclass
class Variant:
    """One contender in a scenario: a server (or two) and how the client talks to it."""

    name: str
    server: ServerSpec
    client: dict[str, Any] = field(default_factory=dict)
    sub_server: ServerSpec | None = None  # cross-process: subscribers on a second server


@dataclass
class Config:
    quick: bool
    reps: int
    duration: float
    ws_impls: list[str]
    only: set[str] | None
    out: Path
    experiments: bool
    stamp: str
    variants: set[str] | None = None


class Recorder:
    """Appends every measurement to the JSON-lines file and keeps them for the summary."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []
        path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, record: dict[str, Any]) -> None:
        record = {"time": time.time(), **record}
        self.records.append(record)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def log(msg: str) -> None:
    print(msg, flush=True)


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
            brief = _brief(scenario, result) if error is None else f"ERROR {error[:300]}"
            log(f"  {scenario} {params} {variant.name:<22} r{rep}: {brief}")


def _brief(scenario: str, r: dict[str, Any]) -> str:
    cpu = (
        f"cpu srv {'+'.join(f'{u:.0%}' for u in r.get('server_cpu_util', []))} cli {r.get('client_cpu_util', 0):.0%}"  # noqa: E501
        f" stolen {r.get('contention', 0):.0%}"
    )
    if scenario in ("echo", "multiplex"):
        return f"{r['msg_per_s']:>9.0f} msg/s  p50 {r['rtt_us']['p50']:.0f}us p99 {r['rtt_us']['p99']:.0f}us  {cpu}"  # noqa: E501
    if scenario in ("fanout", "redis_fanout"):
        return (
            f"{r['deliveries_per_s']:>9.0f} deliv/s  p99 {r['latency_us']['p99'] / 1000:.1f}ms "
            f"lost {r['lost']}  {cpu}"
        )
    if scenario == "connect":
        return f"{r['conns_per_s']:>7.0f} conn/s  failed {r['failed']}  {cpu}"
    return json.dumps(r)[:200]


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
            spec = {
                "scenario": "echo",
                "conns": conns,
                "path": "/echo",
                "duration": cfg.duration,
                "max_msgs": 2_000_000,
                "warmup": 0.3,
            }
            run_rounds(rec, cfg, servers, "echo", {"conns": conns}, chosen, spec, cfg.reps, cfg.duration + 40)
    servers.stop_all()


def fanout_variants(cfg: Config, subs: int) -> list[Variant]:
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
    return variants


def scenario_fanout(rec: Recorder, cfg: Config, servers: Servers) -> None:
    sizes = [1000] if cfg.quick else [100, 1000, 5000]
    if os.environ.get("BENCH_FANOUT_SIZES"):
        sizes = [int(x) for x in os.environ["BENCH_FANOUT_SIZES"].split(",")]
    for subs in sizes:
        spec = {
            "scenario": "fanout",
            "subs": subs,
            "room": f"b{os.getpid()}",
            "duration": cfg.duration,
            "max_broadcasts": 100_000,
            "window": 4,
            "payload": 64,
            "warmup": 0.3,
            "stall": 5.0,
        }
        run_rounds(
            rec, cfg, servers, "fanout", {"subs": subs}, fanout_variants(cfg, subs), spec, cfg.reps, 180
        )
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


def scenario_multiplex(rec: Recorder, cfg: Config, servers: Servers) -> None:
    server = ServerSpec("bench.apps.wsroute_app")
    variants = [
        Variant("10_sockets", server, {"conns": 10, "topic_fmt": "/mx/{}"}),
        Variant("1_socket_10_topics", server, {"mux_topics": 10, "topic_fmt": "/mx/{}"}),
    ]
    spec = {"scenario": "echo", "duration": cfg.duration, "max_msgs": 2_000_000, "warmup": 0.3}
    run_rounds(rec, cfg, servers, "multiplex", {"topics": 10}, variants, spec, cfg.reps, cfg.duration + 40)
    servers.stop_all()


def scenario_memory(rec: Recorder, cfg: Config, servers: Servers) -> None:
    conns = 5000
    variants = [
        Variant("raw", ServerSpec("bench.apps.raw")),
        Variant("wsroute", ServerSpec("bench.apps.wsroute_app")),
    ]
    if not cfg.quick:
        variants.append(Variant("fastapi", ServerSpec("bench.apps.fastapi_app")))
    reps = 1 if cfg.quick else 3
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
    subs = 1000
    spec = {
        "scenario": "fanout",
        "subs": subs,
        "room": f"r{os.getpid()}",
        "duration": cfg.duration,
        "max_broadcasts": 100_000,
        "window": 4,
        "payload": 64,
        "warmup": 0.3,
        "stall": 5.0,
    }
    run_rounds(rec, cfg, servers, "redis_fanout", {"subs": subs}, variants, spec, cfg.reps, 180)
    servers.stop_all()


def scenario_micro(rec: Recorder, cfg: Config, servers: Servers) -> None:
    proc = subprocess.run(
        [str(VENV_PY), str(BENCH / "micro.py"), "quick" if cfg.quick else "full", str(SERVER_CPU)],
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


SCENARIOS = {
    "micro": scenario_micro,
    "echo": scenario_echo,
    "fanout": scenario_fanout,
    "connect": scenario_connect,
    "multiplex": scenario_multiplex,
    "memory": scenario_memory,
    "redis": scenario_redis,
}


# --- summary --------------------------------------------------------------------------------


CLEAN = 0.10
"""A run is "clean" when no process kept our server or client off its CPU for more than
this share of the measured window (from /proc/*/schedstat run-queue wait)."""


def _get(record: dict[str, Any], metric: str) -> float | None:
    value: Any = record
    for part in metric.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value)


def cpu_per_op(record: dict[str, Any]) -> float | None:
    """Server CPU µs per message (echo) or per delivery (fan-out), all server processes."""
    ops = record.get("msgs") or record.get("deliveries") or record.get("conns")
    if not ops or "server_cpu_s" not in record:
        return None
    return float(sum(record["server_cpu_s"])) / ops * 1e6


def paired(
    records: list[dict[str, Any]],
    variant: str,
    base: str,
    metric: str,
    *,
    clean: bool = False,
    inverse: bool = False,
) -> list[float]:
    """Per-round ratios variant/base (the two ran back to back in the same round).

    `clean` keeps only rounds where neither run was disturbed; `inverse` gives base/variant
    (for costs, so that > 1 still means "variant better").
    """
    by_rep: dict[int, dict[str, float]] = {}
    for r in records:
        v = cpu_per_op(r) if metric == "cpu_per_op" else _get(r, metric)
        if r.get("error") is not None or v is None:
            continue
        if clean and r.get("contention", 0.0) > CLEAN:
            continue
        by_rep.setdefault(r["rep"], {})[r["variant"]] = v
    out = []
    for d in by_rep.values():
        if variant in d and base in d and d[base] and d[variant]:
            out.append(d[base] / d[variant] if inverse else d[variant] / d[base])
    return out


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Row:
    scenario: str
    params: str
    variant: str
    value: str
    ratio: str
    clean: str
    cpu_ratio: str
    target: str
    verdict: str
    cpu: str
    extra: str


def fmt_ratio(ratios: list[float], n: bool = False) -> str:
    if not ratios:
        return "n/a"
    text = f"{med(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"
    return f"{text} n={len(ratios)}" if n else text


# scenario: (metric, unit, baseline, {variant: (target text, bound, ratio must be >= bound)})
SUMMARY_SPEC: dict[str, tuple[str, str, str, dict[str, tuple[str, float, bool]]]] = {
    "echo": ("msg_per_s", "msg/s", "raw", {"wsroute": ("≥ 0.90× raw", 0.90, True)}),
    "fanout": ("deliveries_per_s", "deliveries/s", "naive", {"wsroute": ("≥ 0.95× naive", 0.95, True)}),
    "connect": ("conns_per_s", "conn/s", "raw", {}),
    "multiplex": (
        "msg_per_s",
        "msg/s",
        "10_sockets",
        {"1_socket_10_topics": ("≥ 0.91× (cost ≤ 1.1×)", 1 / 1.1, True)},
    ),
    "memory": ("bytes_per_conn", "KiB/conn", "raw", {"wsroute": ("≤ 1.2× raw", 1.2, False)}),
    "redis_fanout": (
        "deliveries_per_s",
        "deliveries/s",
        "wsroute_memory",
        {"wsroute_redis_2proc": ("≥ 0.60× memory", 0.60, True)},
    ),
}


def verdict_of(all_r: list[float], clean_r: list[float], bound: float, at_least: bool) -> str:
    """PASS/FAIL on the clean rounds when there are at least 3 of them, else on all rounds."""
    use, note = (clean_r, "") if len(clean_r) >= 3 else (all_r, " (noisy)")
    if not use:
        return "n/a"
    m = med(use)
    return ("PASS" if (m >= bound if at_least else m <= bound) else "FAIL") + note


def summarize(records: list[dict[str, Any]]) -> tuple[list[Row], dict[str, Any]]:
    rows: list[Row] = []
    facts: dict[str, Any] = {}
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("scenario") not in SUMMARY_SPEC:
            continue
        key = (
            r["scenario"],
            json.dumps(r.get("params", {}), sort_keys=True),
            r.get("group_ws", r.get("ws", "")),
        )
        groups.setdefault(key, []).append(r)

    for (scenario, params, ws), recs in groups.items():
        metric, unit, base, targets = SUMMARY_SPEC[scenario]
        label = params.replace('"', "").strip("{}")
        if ws and ws != "websockets-sansio":
            label += f", {ws}"
        throughput = scenario != "memory"
        for name in dict.fromkeys(r["variant"] for r in recs):
            mine = [r for r in recs if r["variant"] == name and r.get("error") is None]
            errors = [r for r in recs if r["variant"] == name and r.get("error")]
            values = [v for v in (_get(r, metric) for r in mine) if v is not None]
            if unit == "KiB/conn":
                value = f"{med(values) / 1024:,.1f} {unit}"
            else:
                value = f"{med(values):,.0f} {unit}"
            if errors:
                value += f" ({len(errors)} failed)"
            all_r = paired(recs, name, base, metric) if name != base else []
            clean_r = paired(recs, name, base, metric, clean=True) if name != base and throughput else []
            cpu_r = (
                paired(recs, name, base, "cpu_per_op", inverse=True) if name != base and throughput else []
            )
            target, verdict = "", ""
            if name in targets:
                target, bound, at_least = targets[name]
                verdict = verdict_of(all_r, clean_r, bound, at_least)
                facts[f"{scenario}[{label}].{name}"] = {
                    "all": med(all_r),
                    "clean": med(clean_r),
                    "clean_n": len(clean_r),
                    "cpu": med(cpu_r),
                }
            extra = []
            if scenario in ("echo", "multiplex") and mine:
                p50 = med([r["rtt_us"]["p50"] for r in mine])
                p99 = med([r["rtt_us"]["p99"] for r in mine])
                extra.append(f"RTT p50 {p50:.0f} µs, p99 {p99:.0f} µs")
            if scenario in ("fanout", "redis_fanout") and mine:
                extra.append(f"p99 {med([r['latency_us']['p99'] for r in mine]) / 1000:.1f} ms")
                extra.append(f"lost {sum(r['lost'] for r in mine)}")
                if name != base:
                    lat = paired(recs, name, base, "latency_us.p99")
                    if lat:
                        extra.append(f"p99 latency {med(lat):.2f}× {base}")
            if throughput and mine:
                per = [v for v in (cpu_per_op(r) for r in mine) if v is not None]
                if per:
                    what = (
                        "conn" if scenario == "connect" else ("delivery" if "fanout" in scenario else "msg")
                    )
                    if scenario == "connect":
                        per = [sum(r["server_cpu_s"]) / r["conns"] * 1e6 for r in mine if r.get("conns")]
                    extra.append(f"server {med(per):.1f} µs CPU/{what}")
            if scenario == "connect" and mine:
                extra.append(f"handshake p50 {med([r['handshake_us']['p50'] for r in mine]) / 1000:.2f} ms")
            cpu = ""
            if mine and "server_cpu_util" in mine[0]:
                srv = "+".join(
                    f"{med([r['server_cpu_util'][i] for r in mine]):.0%}"
                    for i in range(len(mine[0]["server_cpu_util"]))
                )
                stolen = med([r.get("contention", 0.0) for r in mine])
                cpu = f"{srv} / {med([r['client_cpu_util'] for r in mine]):.0%} / {stolen:.0%}"
            rows.append(
                Row(
                    scenario,
                    label,
                    name,
                    value,
                    "baseline" if name == base else fmt_ratio(all_r),
                    "" if name == base or not throughput else fmt_ratio(clean_r, n=True),
                    "" if name == base or not throughput else fmt_ratio(cpu_r),
                    target,
                    verdict,
                    cpu,
                    "; ".join(extra),
                )
            )
        if scenario == "fanout":
            # The peer margins are for 1000 and 5000 subscribers; at 100, context only.
            peer_target = json.loads(params).get("subs") in (1000, 5000)
            for peer, bound in (("litestar", 1.6), ("broadcaster", 1.6), ("socketio", 4.5)):
                all_r = paired(recs, "wsroute", peer, metric)
                if not all_r:
                    continue
                clean_r = paired(recs, "wsroute", peer, metric, clean=True)
                cpu_r = paired(recs, "wsroute", peer, "cpu_per_op", inverse=True)
                rows.append(
                    Row(
                        scenario,
                        label,
                        f"wsroute vs {peer}",
                        "",
                        fmt_ratio(all_r),
                        fmt_ratio(clean_r, n=True),
                        fmt_ratio(cpu_r),
                        f"≥ {bound}× {peer}" if peer_target else "",
                        verdict_of(all_r, clean_r, bound, True) if peer_target else "",
                        "",
                        "",
                    )
                )
                facts[f"fanout[{label}].wsroute_vs_{peer}"] = {"all": med(all_r), "clean": med(clean_r)}
        if scenario == "redis_fanout":
            pair = ("wsroute_redis_2proc", "broadcaster_redis_2proc")
            all_r = paired(recs, *pair, metric)
            if all_r:
                clean_r = paired(recs, *pair, metric, clean=True)
                cpu_r = paired(recs, *pair, "cpu_per_op", inverse=True)
                rows.append(
                    Row(
                        scenario,
                        label,
                        "wsroute_redis vs broadcaster_redis",
                        "",
                        fmt_ratio(all_r),
                        fmt_ratio(clean_r, n=True),
                        fmt_ratio(cpu_r),
                        "≥ 1.5× broadcaster redis",
                        verdict_of(all_r, clean_r, 1.5, True),
                        "",
                        "",
                    )
                )
                facts[f"redis_fanout[{label}].wsroute_vs_broadcaster"] = {
                    "all": med(all_r),
                    "clean": med(clean_r),
                }
    return rows, facts


def micro_rows(records: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for r in records:
        if r.get("scenario") != "micro" or "injection" not in r:
            continue
        inj = r["injection"]
        o = inj["overhead_three_us"]
        us = inj["us_per_call"]
        out.append(
            f"| injection overhead, 3 params (Channel, guard, Broker) + `str` message | {o['median']:.2f} µs/event "  # noqa: E501
            f"({o['min']:.2f}–{o['max']:.2f}) | ≤ 5 µs | {'PASS' if o['median'] <= 5 else 'FAIL'} | "
            f"`Session.on_message` {us['wsroute_three']:.2f} µs vs awaiting the bare function {us['bare_three']:.2f} µs |"  # noqa: E501
        )
        out.append(
            f"| injection overhead, message only | {inj['overhead_zero_us']['median']:.2f} µs/event | | | |"
        )
        out.append(
            f"| injection overhead, 3 params + one `yield` dependency (event scope) | "
            f"{inj['overhead_event_dep_us']['median']:.2f} µs/event | | | AsyncExitStack + asynccontextmanager per event |"  # noqa: E501
        )
        for key, label in (
            ("asgi_echo", "receive never suspends"),
            ("asgi_echo_suspending", "receive suspends once"),
        ):
            if key in r:
                per = r[key]["us_per_msg"]
                out.append(
                    f"| in-process ASGI echo, µs/message ({label}) | "
                    + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
                    + " | | | framework CPU only, no uvicorn or network |"
                )
        if "fanout" in r:
            f = r["fanout"]
            out.append(
                f"| in-process fan-out to {f['subs']}, µs/delivery | "
                + ", ".join(f"{k} {v:.2f}" for k, v in f["us_per_delivery"].items())
                + " | | | no uvicorn: the framework's own cost per subscriber |"
            )
        if "memory" in r:
            m = r["memory"]
            parts = []
            for k in ("raw", "fastapi", "wsroute"):
                if k in m:
                    owners = ", ".join(f"{o} {b}" for o, b in m[k]["by_owner"].items())
                    parts.append(f"{k} {m[k]['bytes_per_conn']:,.0f} B ({owners})")
            out.append(
                f"| in-process memory per idle connection ({m['conns']} held; uvicorn's own objects excluded) | "  # noqa: E501
                + "; ".join(parts)
                + " | | | tracemalloc, by the innermost frame of each allocation |"
            )
    return out


def render_markdown(rows: list[Row], records: list[dict[str, Any]], cfg: Config, elapsed: float) -> str:
    lines = [
        f"Run `{cfg.stamp}` ({'quick' if cfg.quick else 'full'}): {cfg.reps} interleaved rounds of "
        f"{cfg.duration:g} s per point, {elapsed / 60:.1f} min in all.",
        "",
        "Columns: *ratio* = median of the per-round ratios variant/baseline over all rounds (min–max); "
        f"*clean* = the same over the rounds where no other process took more than {CLEAN:.0%} of the "
        "window from our server or client (n = rounds kept); *CPU ratio* = baseline server CPU per "
        "operation / variant's (> 1: the variant spends less CPU per message). The verdict uses *clean* "
        "when it has ≥ 3 rounds, else *ratio* (marked noisy). *CPU* = server / client utilisation of one "
        "core, and the share of the window stolen by other processes.",
        "",
        "| scenario | params | variant | median | ratio (min–max) | clean | CPU ratio | target | verdict | CPU srv / cli / stolen | notes |",  # noqa: E501
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.scenario} | {row.params} | {row.variant} | {row.value} | {row.ratio} | {row.clean} | "
            f"{row.cpu_ratio} | {row.target} | {row.verdict} | {row.cpu} | {row.extra} |"
        )
    micro = micro_rows(records)
    if micro:
        lines += [
            "",
            "| micro-benchmark | result | target | verdict | notes |",
            "|---|---|---|---|---|",
            *micro,
        ]
    return "\n".join(lines) + "\n"


def machine() -> str:
    import psutil

    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = []
    for pkg in (
        "uvicorn",
        "websockets",
        "wsproto",
        "starlette",
        "fastapi",
        "picows",
        "uvloop",
        "python-socketio",
        "litestar",
        "broadcaster",
    ):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions.append(f"{pkg} {version(pkg)}")
    load = os.getloadavg()
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "wsroute"], capture_output=True, text=True)
    head = commit.stdout.strip() + (" + uncommitted changes in wsroute/" if dirty.stdout.strip() else "")
    return (
        f"wsroute at {head}; {cpu}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; " + ", ".join(versions)
    )


DOC_HEAD = """# Benchmarks

The suite lives in `bench/` (see `bench/README.md`). Every figure that matters is a **ratio
against a baseline measured in the same run**: the variants of a scenario run interleaved
(A, B, A, B, … with the order reversed every other round), and the table gives the median of
the per-round ratios with their spread (min–max). Absolute numbers are context only: the
benchmark machine is small (2 cores) and shared with other work.

## How to reproduce

```sh
python3 bench/run.py --setup     # bench/.venv: bench/requirements.txt + wsroute[redis], editable
python3 bench/run.py --quick     # about two minutes, the targets only
python3 bench/run.py             # the full suite (writes bench/results/ and this page)
python3 bench/run.py --profile   # py-spy profiles of wsroute's echo and fan-out paths
```

Redis (for the cross-process scenario) is expected at 127.0.0.1:6379; without it that
scenario is skipped.

## Set-up

- Servers: uvicorn, one worker, uvloop + httptools, `--ws websockets-sansio` (the targets;
  `wsproto` rows are context), on 127.0.0.1, started and stopped by the runner, pinned to
  CPU 0. Load client: picows on uvloop in a separate process pinned to CPU 1. The CPU column
  is the share of one core each side used inside the measured window: a server at ~100% is
  the bottleneck; a client near 100% means the figure is a lower bound.
- Echo: closed loop, one message in flight per connection, 32-byte text.
- Fan-out: one publisher, N subscribers on one topic, 64-byte text, a window of 4
  broadcasts in flight (the next is published when the oldest reached every subscriber);
  every delivery is counted and `lost` is sent × subscribers − delivered after a drain.
  Latency is publisher send → subscriber receive, both in the client process.
- Connect: 8 concurrent loops of open → accepted → close, through a guard (wsroute) or a
  `Depends` (FastAPI).
- Memory: a fresh server, warmed with 200 connect/close cycles, then 5000 idle connections;
  (RSS held − RSS before) / 5000.
- Multiplex: 10 closed-loop echo streams, as 10 topics of one `rocket-multiplex` socket vs
  10 dedicated sockets, same server and handler.
- Redis: 1000 subscribers on server B, publisher on server A, both `redis://127.0.0.1:6379/0`,
  against wsroute's memory broker in one process and against encode/broadcaster's Redis
  backend set up the same way.

"""


def write_outputs(
    rec: Recorder, cfg: Config, elapsed: float, write_docs: bool, machine_line: str | None = None
) -> str:
    rows, _facts = summarize(rec.records)
    table = render_markdown(rows, rec.records, cfg, elapsed)
    rec.path.with_suffix(".md").write_text(table)
    if write_docs:
        DOCS.parent.mkdir(parents=True, exist_ok=True)
        notes_path = BENCH / "notes.md"
        notes = notes_path.read_text() if notes_path.exists() else ""
        DOCS.write_text(
            DOC_HEAD
            + (notes + "\n" if notes else "")
            + f"## Latest full run\n\nMachine: {machine_line or machine()}.\n\n"
            + table
        )
    return table


# --- profiles -------------------------------------------------------------------------------


def profile(cfg: Config) -> None:
    """py-spy record of the server during echo and fan-out, wsroute and the baselines."""
    PROFILES.mkdir(exist_ok=True)
    py_spy = VENV / "bin" / "py-spy"
    servers = Servers(cfg.out)
    apps = {
        "raw": ServerSpec("bench.apps.raw"),
        "wsroute": ServerSpec("bench.apps.wsroute_app"),
        "wsroute_bare": ServerSpec("bench.apps.wsroute_app", {"BENCH_WSROUTE_BARE": "1"}),
        "starlette": ServerSpec("bench.apps.starlette_app"),
        "fastlane": ServerSpec("bench.apps.wsroute_app", ws=FASTLANE),
        "naive": ServerSpec("bench.apps.fastapi_app"),
        "raw_loop": ServerSpec("bench.apps.raw"),
    }
    scenarios: dict[str, tuple[str, dict[str, Any]]] = {
        "echo100": ("raw wsroute wsroute_bare", {"scenario": "echo", "conns": 100, "path": "/echo"}),
        "echo10": ("raw wsroute starlette", {"scenario": "echo", "conns": 10, "path": "/echo"}),
        "fanout1000": (
            "fastlane wsroute raw_loop naive",
            {"scenario": "fanout", "subs": 1000, "window": 4, "payload": 64, "max_broadcasts": 100_000},
        ),
        "fanout5000": (
            "fastlane naive wsroute",
            {"scenario": "fanout", "subs": 5000, "window": 4, "payload": 64, "max_broadcasts": 100_000},
        ),
        "connect": (
            "raw wsroute",
            {"scenario": "connect", "path": "/idle", "concurrency": 8, "max_conns": 20_000},
        ),
    }
    jobs = [
        (f"{scenario}-{app}", apps[app], spec)
        for scenario, (names, spec) in scenarios.items()
        for app in names.split()
    ]
    duration = 6.0
    if os.environ.get("BENCH_PROFILE_JOBS"):
        wanted = os.environ["BENCH_PROFILE_JOBS"].split(",")
        jobs = [job for job in jobs if job[0] in wanted]
    else:
        # The default set: the ones the notes discuss (the others on demand).
        jobs = [job for job in jobs if not job[0].startswith(("echo10-", "fanout1000-", "fanout5000-fast"))]
    try:
        for name, server_spec, spec in jobs:
            server = servers.get(server_spec)
            spec = {
                **spec,
                "url": server.url,
                "duration": duration,
                "max_msgs": 10_000_000,
                "warmup": 0.5,
                "room": "prof",
            }
            out = PROFILES / f"{name}.raw.txt"
            spies: list[subprocess.Popen[bytes]] = []

            def start_spy(server: Server = server, out: Path = out, spies: list[Any] = spies) -> None:
                # Sample only the measured window (not the connection set-up).
                spy = subprocess.Popen(
                    [
                        str(py_spy),
                        "record",
                        "-p",
                        str(server.proc.pid),
                        "-r",
                        "250",
                        "--nonblocking",
                        "-f",
                        "raw",
                        "-o",
                        str(out),
                        "-d",
                        str(int(duration)),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                os.sched_setaffinity(spy.pid, {CLIENT_CPU})
                spies.append(spy)

            result = run_client(spec, [server], duration + 120, on_start=start_spy)
            for spy in spies:
                spy.wait(30)
            log(f"  profile {name}: {_brief(spec['scenario'], result)} -> {out.relative_to(ROOT)}")
            per = cpu_per_op(result)
            head = (
                f"{name}: {_brief(spec['scenario'], result)}\n"
                f"server CPU per operation: {per:.2f} µs (multiply a share below by this for µs/op)\n\n"
            )
            (PROFILES / f"{name}.summary.txt").write_text(head + summarize_profile(out))
    finally:
        servers.stop_all()


def summarize_profile(path: Path, top: int = 40) -> str:
    """Self and inclusive sample shares per function (file:line) from py-spy's raw format."""
    self_counts: dict[str, int] = {}
    incl_counts: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        frames = stack.split(";")
        total += count
        leaf = frames[-1]
        self_counts[leaf] = self_counts.get(leaf, 0) + count
        for frame in set(frames):
            incl_counts[frame] = incl_counts.get(frame, 0) + count
    lines = [f"{path.name}: {total} samples", "", "self % | function (file:line)"]
    for frame, c in sorted(self_counts.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * c / total:6.2f} | {frame}")
    lines += ["", "inclusive % | function (file:line)"]
    for frame, c in sorted(incl_counts.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * c / total:6.2f} | {frame}")
    return "\n".join(lines) + "\n"


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--setup", action="store_true", help="create bench/.venv and exit")
    parser.add_argument(
        "--quick", action="store_true", help="the targets only, fewer and shorter rounds (~2 min)"
    )
    parser.add_argument("--only", help=f"comma-separated scenarios: {','.join(SCENARIOS)}")
    parser.add_argument("--reps", type=int, help="interleaved rounds per point (quick 3, full 5)")
    parser.add_argument("--duration", type=float, help="measured seconds per run (quick 1, full 2)")
    parser.add_argument(
        "--wsproto", action="store_true", help="also run echo on wsproto (default in full runs)"
    )
    parser.add_argument("--no-wsproto", action="store_true", help="full run without the wsproto echo rows")
    parser.add_argument(
        "--experiments",
        action="store_true",
        help="also run the calibration and bench-only experiment rows (default in full runs)",
    )
    parser.add_argument(
        "--variants", help="comma-separated variant names to keep (baselines are always kept)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy profiles into bench/profiles/ and exit"
    )
    parser.add_argument("--summarize", metavar="JSONL", help="print the table of an earlier run and exit")
    parser.add_argument(
        "--write-docs", action="store_true", help="with --summarize: rewrite docs/benchmarks.md"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args()
    if args.setup:
        setup()
        return
    ensure_venv_python()
    if args.summarize:
        records = [json.loads(line) for line in Path(args.summarize).read_text().splitlines() if line.strip()]
        meta = next((r for r in records if r.get("scenario") == "meta"), {})
        cfg = Config(
            quick=bool(meta.get("quick")),
            reps=int(meta.get("reps", 0)),
            duration=float(meta.get("duration", 0)),
            ws_impls=[],
            only=None,
            out=RESULTS,
            stamp=Path(args.summarize).stem,
            experiments=False,
        )
        body = [r for r in records if r.get("scenario") != "meta"]
        elapsed = body[-1]["time"] - meta["time"] if body and "time" in meta else 0.0
        cfg.reps = cfg.reps or max((r.get("rep", 0) for r in body), default=0) + 1
        if args.write_docs:
            rec = Recorder(Path(args.summarize))
            rec.records = body
            print(write_outputs(rec, cfg, elapsed, write_docs=True, machine_line=meta.get("machine")))
        else:
            rows, _ = summarize(body)
            print(render_markdown(rows, records, cfg, elapsed))
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 12000:
        log(f"warning: the fd limit is {hard}; 5000 connections need about 10000 (client + server)")
    if os.cpu_count() and os.cpu_count() < 2:  # type: ignore[operator]
        sys.exit("needs 2 CPUs: the server and the client are pinned to different cores")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    quick = args.quick
    out = RESULTS / f"{stamp}{'-quick' if quick else ''}"
    out.mkdir(parents=True, exist_ok=True)
    ws_impls = ["websockets-sansio"] + (
        ["wsproto"] if (args.wsproto or not (quick or args.no_wsproto)) else []
    )
    cfg = Config(
        quick=quick,
        reps=args.reps or (3 if quick else 5),
        duration=args.duration or (1.0 if quick else 2.0),
        ws_impls=ws_impls,
        only=set(args.only.split(",")) if args.only else None,
        out=out,
        experiments=args.experiments or not quick,
        variants=set(args.variants.split(",")) if args.variants else None,
        stamp=stamp,
    )
    if args.profile:
        try:
            profile(cfg)
        finally:
            tidy_logs(out)
        return
    rec = Recorder(RESULTS / f"{stamp}{'-quick' if quick else ''}.jsonl")
    rec.add(
        {"scenario": "meta", "quick": quick, "reps": cfg.reps, "duration": cfg.duration, "machine": machine()}
    )
    servers = Servers(out)
    t0 = time.monotonic()
    try:
        for name, fn in SCENARIOS.items():
            if cfg.only and name not in cfg.only:
                continue
            log(f"== {name}")
            t = time.monotonic()
            fn(rec, cfg, servers)
            log(f"   ({time.monotonic() - t:.0f} s)")
    finally:
        servers.stop_all()
    elapsed = time.monotonic() - t0
    rec.records = [r for r in rec.records if r.get("scenario") != "meta"]
    table = write_outputs(rec, cfg, elapsed, write_docs=not quick and not args.no_docs and not cfg.only)
    print()
    print(table)
    log(f"results: {rec.path.relative_to(ROOT)}  table: {rec.path.with_suffix('.md').relative_to(ROOT)}")
    log(f"total {elapsed:.0f} s")
    tidy_logs(out)


def tidy_logs(out: Path) -> None:
    """Keep only the server logs that say something (a crash, a warning)."""
    if not out.exists():
        return
    for path in out.iterdir():
        if path.stat().st_size == 0:
            path.unlink()
    if not any(out.iterdir()):
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
