"""The processes of a measurement: the servers (uvicorn; hypercorn or granian for the `servers`
scenario) pinned to one CPU, the load client on the other.

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
    ws: str = "websockets-sansio"  # uvicorn's --ws; the other servers have their own
    server: str = "uvicorn"  # or "hypercorn", "granian" (see `Server`)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.module, json.dumps(self.env, sort_keys=True), self.ws, self.server)


def command(spec: ServerSpec, port: int) -> list[str]:
    """The command line of `spec`'s server on 127.0.0.1:`port`: one worker, uvloop, warnings
    and errors logged only (hypercorn and granian as `tests/support/servers.py` starts them)."""
    if spec.server == "uvicorn":
        return [
            str(VENV_PY),
            "-m",
            "uvicorn",
            f"{spec.module}:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
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
    if spec.server == "hypercorn":  # HTTP/1.1 + wsproto; no access log unless asked
        return [
            str(VENV_PY), "-m", "hypercorn", f"{spec.module}:app",
            "--bind", f"127.0.0.1:{port}",
            "--workers", "1",
            "--worker-class", "uvloop",
            "--log-level", "WARNING",
        ]  # fmt: skip
    if spec.server == "granian":  # its default interface is RSGI
        return [
            str(VENV_PY), "-m", "granian", f"{spec.module}:app",
            "--interface", "asgi",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--workers", "1",
            "--loop", "uvloop",
            "--ws",
            "--log-level", "warning",
            "--no-access-log",
        ]  # fmt: skip
    raise ValueError(f"unknown server {spec.server!r}")


def answers_http(sock: socket.socket) -> bool:
    """Whether a plain GET on `sock` gets an HTTP response (any status) within 5 s."""
    sock.settimeout(5)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    return sock.recv(16).startswith(b"HTTP/")


class Server:
    """One server process (uvicorn unless `spec.server` says hypercorn or granian), one
    worker, pinned to the server CPU.

    uvicorn runs the app in the process it starts. hypercorn (``--workers 1``) and granian
    start a supervisor that binds the socket and spawns the worker that runs the app
    (hypercorn also a ``multiprocessing`` resource tracker), and granian's worker has threads
    of its own (its Rust runtime) beside the one of the event loop. So for them: the whole
    process tree, every thread, is pinned to the server CPU; the server is ready when the
    worker answers an HTTP request (the supervisor's socket can accept before the worker runs);
    `cpu`, `rss` and `runq_wait` are the worker's, the process that runs the app (the
    supervisor and the tracker only wait: their CPU would add nothing and their RSS would add
    a second interpreter's); see `runq_wait` for granian's threads.
    """

    def __init__(self, spec: ServerSpec, log_dir: Path, port: int | None = None) -> None:
        self.spec = spec
        self.port = port or free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        name = spec.module.rsplit(".", 1)[-1] + "".join(f"-{v.split(':')[0]}" for v in spec.env.values())
        if spec.server == "uvicorn":
            self.log_path = log_dir / f"server-{name}-{spec.ws.replace(':', '.')}-{self.port}.log"
        else:
            self.log_path = log_dir / f"server-{spec.server}-{name}-{self.port}.log"
        env = {**os.environ, **spec.env, "PYTHONPATH": str(ROOT)}
        env.pop("PYTHONASYNCIODEBUG", None)
        cmd = command(spec, self.port)
        self.log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        os.sched_setaffinity(self.proc.pid, {SERVER_CPU})
        import psutil

        self.ps = psutil.Process(self.proc.pid)
        self.tree = [self.ps]  # every process of the server (uvicorn: one)
        self.app_pid = self.proc.pid  # the process that runs the app
        self._others_s = 0.0  # granian: see `runq_wait`
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {spec.module} exited: see {self.log_path}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2) as sock,
            ):
                if spec.server == "uvicorn" or answers_http(sock):
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server {spec.module} did not listen within 30 s")
            time.sleep(0.05)
        if spec.server != "uvicorn":
            self._adopt_worker()

    def _adopt_worker(self) -> None:
        """Find the worker that runs the app and pin every thread of the tree to the server CPU
        (they inherit the supervisor's CPU, pinned right after it started; this covers any
        thread that began before that)."""
        self.tree = [self.ps, *self.ps.children(recursive=True)]
        workers = [p for p in self.tree[1:] if "resource_tracker" not in " ".join(p.cmdline())]
        if len(workers) != 1:
            self.stop()
            raise RuntimeError(f"{self.spec.server}: expected one worker process, found {workers}")
        self.ps = workers[0]
        self.app_pid = self.ps.pid
        for process in self.tree:
            for thread in process.threads():
                with contextlib.suppress(OSError):  # a thread that just ended
                    os.sched_setaffinity(thread.id, {SERVER_CPU})

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def system_cpu(self) -> float:
        """The kernel's part of `cpu` (syscalls, and on loopback the receiving socket's work
        and the reader's wake-up, done in the writer's context)."""
        return float(self.ps.cpu_times().system)

    def runq_wait(self) -> float:
        """Seconds the server's event-loop thread was runnable but not running (CPU taken).

        granian: the CPU time other processes had on the server CPU instead. Its worker runs
        the event loop on one thread and its Rust runtime (sockets, HTTP, WebSocket frames)
        on others, all on that one CPU, so a thread's run-queue wait counts the time its
        siblings held the core: the server's own work, most of the window when it is busy,
        not time stolen from it. The core's busy time (/proc/stat: user, nice, system, irq,
        softirq) minus the CPU time of the server's process tree is what others took; an
        upper bound of what they stole (they may have run while the server idled), which is
        the same figure while the server is saturated. Clock ticks (10 ms); kept monotonic."""
        if self.spec.server == "granian":
            return self._others_on_core()
        try:
            with open(f"/proc/{self.app_pid}/schedstat") as f:
                return int(f.read().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0

    def _others_on_core(self) -> float:
        """Seconds of the server CPU's busy time, since boot, not spent by the server's
        processes (see `runq_wait`)."""
        import psutil

        ticks = cpu_ticks(SERVER_CPU)
        if ticks is None:
            return self._others_s
        # user nice system idle iowait irq softirq
        busy = (sum(ticks[:3]) + ticks[5] + ticks[6]) / os.sysconf("SC_CLK_TCK")
        try:
            ours = sum(sum(p.cpu_times()[:2]) for p in self.tree)
        except psutil.Error:
            return self._others_s
        self._others_s = max(self._others_s, busy - ours)
        return self._others_s

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
        for process in self.tree[1:]:  # a worker its supervisor left behind
            with contextlib.suppress(Exception):
                process.kill()
        self.log.close()

    def restart(self) -> tuple[float, float]:
        """Stop this server (SIGINT, as `stop`) and start the same app again on the same port,
        in place (`url`, `cpu`, `rss` are the new process's), once it listens: the seconds
        the stop took and the start. The old process's log is kept beside the new one as
        ``*.before-restart.log``."""
        t0 = time.monotonic()
        self.stop()
        t1 = time.monotonic()
        self.log_path.replace(self.log_path.with_suffix(".before-restart.log"))
        fresh = type(self)(self.spec, self.log_path.parent, port=self.port)
        self.__dict__.update(fresh.__dict__)
        return t1 - t0, time.monotonic() - t1


class Servers:
    """Servers shared by the variants of a scenario, started on first use."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[tuple[str, str, str, str], list[Server]] = {}

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


def cpu_ticks(cpu: int) -> list[int] | None:
    """`cpu`'s line of /proc/stat, in clock ticks since boot: user, nice, system, idle,
    iowait, irq, softirq, steal, …; None where it cannot be read."""
    try:
        with open("/proc/stat") as f:
            line = next(x for x in f if x.startswith(f"cpu{cpu} "))
        return [int(x) for x in line.split()[1:]]
    except (OSError, StopIteration, ValueError):
        return None


def hypervisor_steal() -> tuple[float, float]:
    """Seconds since boot that the hypervisor ran something else while the server's and the
    client's virtual CPUs wanted to run (/proc/stat's *steal* column of each; 0 where the
    kernel does not count it). Neither run-queue wait nor the processes' CPU time show it:
    the guest does not see its vCPU stop. Clock ticks (10 ms)."""

    def steal(cpu: int) -> float:
        ticks = cpu_ticks(cpu)
        return ticks[7] / os.sysconf("SC_CLK_TCK") if ticks is not None and len(ticks) > 7 else 0.0

    return steal(SERVER_CPU), steal(CLIENT_CPU)


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
    sys0: list[float] = []
    sys1: list[float] = []
    wait0: list[float] = []
    wait1: list[float] = []
    steal0 = steal1 = (0.0, 0.0)
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
                sys0 = [s.system_cpu() for s in servers]
                wait0 = [s.runq_wait() for s in servers]
                steal0 = hypervisor_steal()
            elif mark == "end":
                if on_end is not None:
                    on_end()
                cpu1 = [s.cpu() for s in servers]
                sys1 = [s.system_cpu() for s in servers]
                wait1 = [s.runq_wait() for s in servers]
                steal1 = hypervisor_steal()
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
        result["server_system_cpu_s"] = [b - a for a, b in zip(sys0, sys1, strict=True)]
        window = result.get("window_s") or 1.0
        result["server_cpu_util"] = [round(c / window, 3) for c in result["server_cpu_s"]]
        result["client_cpu_util"] = round(result.get("client_cpu_s", 0.0) / window, 3)
        result["server_runq_wait_s"] = [b - a for a, b in zip(wait0, wait1, strict=True)]
        result["server_steal_s"] = steal1[0] - steal0[0]
        result["client_steal_s"] = steal1[1] - steal0[1]
        # Share of the window some process, or the hypervisor, stole from our server or
        # client: noise, not us. Steal is counted in clock ticks: one tick less, so that a
        # short window (a 0.1 s burst of SUBSCRIBEs) is not called busy for its rounding.
        tick = 1 / os.sysconf("SC_CLK_TCK")
        result["contention"] = round(
            max(
                [
                    *result["server_runq_wait_s"],
                    result.get("client_runq_wait_s", 0.0),
                    result["server_steal_s"] - tick,
                    result["client_steal_s"] - tick,
                ]
            )
            / window,
            3,
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
