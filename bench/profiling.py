"""`run.py --profile`: py-spy samples of a server's main thread during echo, fan-out and connect.

Each job is one app under one scenario's load; it writes py-spy's raw stacks
(`profiles/<job>.raw.txt`, git-ignored, read by `profile_breakdown.py`) and a
`profiles/<job>.summary.txt` with the server CPU per operation and the hottest functions.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from config import CLIENT_CPU, PROFILES, ROOT, VENV, Config, log
from report import result_line
from servers import FASTLANE, Server, Servers, ServerSpec, run_churned, run_client
from summary import cpu_per_op


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
        "presence": ServerSpec("bench.apps.wsroute_app", {"BENCH_PRESENCE": "1"}),
    }
    fan1000 = {"scenario": "fanout", "subs": 1000, "window": 4, "payload": 64, "max_broadcasts": 100_000}
    churn = {"rate": 500, "pool": 256, "occupancy": 10, "max_seconds": 60, "max_events": 100_000}
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
        # one rocket-multiplex socket, 10 topics: echo through `channel.send` vs request/reply
        "mux10": ("wsroute", {"scenario": "echo", "mux_topics": 10, "topic_fmt": "/mx/{}"}),
        "rq10": ("wsroute", {"scenario": "echo", "mux_topics": 10, "topic_fmt": "/rq/{}", "request": True}),
        # presence: the fan-out to members, and beside it 500 joins + leaves per second
        # (`presence` is the app with BENCH_PRESENCE=1, `wsroute` the same without it)
        "pfanout1000": ("presence", fan1000),
        "churn1000": ("presence wsroute", {**fan1000, "churn": churn}),
        # the churn's frames alone, no subscription (each answered `·INVALID·Not Subscribed`)
        "frames1000": ("presence", {**fan1000, "churn": {**churn, "frames_only": True}}),
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
        on_demand = (
            *("echo10-", "fanout1000-", "fanout5000-fast", "mux10-", "rq10-"),
            *("pfanout1000-", "churn1000-"),
        )
        jobs = [job for job in jobs if not job[0].startswith(on_demand)]
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

            run = run_churned if "churn" in spec else run_client
            result = run(spec, [server], duration + 120, on_start=start_spy)
            for spy in spies:
                spy.wait(30)
            log(f"  profile {name}: {result_line(spec['scenario'], result)} -> {out.relative_to(ROOT)}")
            per = cpu_per_op(result)
            head = (
                f"{name}: {result_line(spec['scenario'], result)}\n"
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
