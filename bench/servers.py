"""The processes of a measurement: uvicorn servers pinned to one CPU, the load client on the other.

`run_client` samples the servers' CPU time and run-queue wait at the client's window marks, so
every result says how much of a core each side used and how much of it other processes stole.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config import BENCH, CLIENT_CPU, ROOT, SERVER_CPU, VENV_PY

# wsroute's opt-in uvicorn protocol: uvicorn's --ws takes an import path as well as a name.
FASTLANE = "wsroute.fastlane:FastlaneProtocol"


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


class ClientError(RuntimeError):
    pass


def spawn_client(spec: dict[str, Any], timeout: float) -> tuple[subprocess.Popen[str], threading.Timer]:
    """A `client.py` process running `spec`, and the timer that kills it after `timeout` s."""
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
    return proc, killer


def run_client(
    spec: dict[str, Any],
    servers: list[Server],
    timeout: float,
    on_ready: Any = None,
    on_start: Any = None,
    on_end: Any = None,
) -> dict[str, Any]:
    """Run one client process; sample the servers' CPU at its start/end marks (`on_start`
    and `on_end` are called there, right before the samples are read)."""
    spec = {**spec, "cpu": CLIENT_CPU}
    proc, killer = spawn_client(spec, timeout)
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
                if on_end is not None:
                    on_end()
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


def run_churned(
    spec: dict[str, Any], used: list[Server], timeout: float, on_start: Any = None
) -> dict[str, Any]:
    """`run_client` with a second client process beside it (presence churn): the churner
    connects its sockets first, starts churning at the fan-out client's ``start`` mark and
    stops at its ``end`` mark; its own figures go under ``churn``. It is pinned to the
    client's CPU: the server's core stays the server's alone."""
    spec = dict(spec)
    churn = {
        "scenario": "churn",
        "url": spec.get("sub_url", spec["url"]),
        "room": spec["room"],
        "cpu": CLIENT_CPU,
        **spec.pop("churn"),
    }
    proc, killer = spawn_client(churn, timeout)
    assert proc.stdin is not None and proc.stdout is not None

    def say(line: str) -> None:
        if proc.poll() is None:
            with contextlib.suppress(OSError):  # it ended already: its result says why
                proc.stdin.write(line + "\n")  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]

    def start() -> None:
        say("go")
        if on_start is not None:
            on_start()

    try:
        ready = json.loads(proc.stdout.readline() or "{}")
        if ready.get("mark") != "ready":
            proc.kill()
            err = proc.stderr.read() if proc.stderr else ""
            raise ClientError(f"churn client did not get ready: {err.strip()[-2000:]}")
        result = run_client(spec, used, timeout, on_start=start, on_end=lambda: say("stop"))
        say("stop")
        with contextlib.suppress(OSError):
            proc.stdin.close()
        out = [json.loads(line) for line in proc.stdout if line.strip()]
        proc.wait(30)
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
    churned = next((m["result"] for m in out if "result" in m), None)
    if churned is None:
        err = proc.stderr.read() if proc.stderr else ""
        raise ClientError(f"churn client failed (exit {proc.returncode}): {err.strip()[-2000:]}")
    result["churn"] = churned
    return result
