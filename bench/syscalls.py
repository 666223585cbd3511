"""Count the server's system calls per operation, raw ASGI against wsroute (`strace -c`).

    bench/.venv/bin/python bench/syscalls.py echo       # per echoed message, 10 connections
    bench/.venv/bin/python bench/syscalls.py connect    # per open + close, 8 in flight

Starts each app as the suite does (`servers.Server`), attaches ``strace -c -f`` to it for
the client's measured window only, and prints each call's count divided by the messages or
connections the client completed. strace slows the server several times over: the counts
are what to read, not the rates. Needs Debian's ``strace``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from servers import Server, ServerSpec, run_client

SPECS: dict[str, dict[str, Any]] = {
    "echo": {"scenario": "echo", "conns": 10, "path": "/echo", "max_msgs": 2_000_000},
    "connect": {"scenario": "connect", "path": "/idle", "max_conns": 4000, "concurrency": 8},
}
DONE = {"echo": "msgs", "connect": "conns"}


def count(scenario: str, module: str, log_dir: Path) -> dict[str, float]:
    """Calls per operation of `module`'s server over one 2 s window."""
    server = Server(ServerSpec(module), log_dir)
    out = log_dir / f"{module}.strace"
    tracer: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        cmd = ["strace", "-c", "-f", "-p", str(server.app_pid), "-o", str(out)]
        tracer.append(subprocess.Popen(cmd, stderr=subprocess.DEVNULL))
        time.sleep(0.3)  # attached before the window opens

    def end() -> None:
        tracer[0].send_signal(signal.SIGINT)
        tracer[0].wait(10)

    spec = {**SPECS[scenario], "duration": 2.0, "warmup": 0.3, "url": server.url}
    try:
        result = run_client(spec, [server], 60, on_start=start, on_end=end)
    finally:
        server.stop()
    done = result[DONE[scenario]]
    calls: dict[str, float] = {}
    for line in out.read_text().splitlines():
        fields = line.split()
        # `% time  seconds  usecs/call  calls  [errors]  syscall`
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            calls[fields[-1]] = int(fields[3]) / done
    return calls


def main() -> None:
    scenario = sys.argv[1] if len(sys.argv) > 1 else "echo"
    if scenario not in SPECS:
        raise SystemExit(f"usage: bench/.venv/bin/python bench/syscalls.py [{'|'.join(SPECS)}]")
    with tempfile.TemporaryDirectory() as tmp:
        counts = {app: count(scenario, f"bench.apps.{app}", Path(tmp)) for app in ("raw", "wsroute_app")}
    names = sorted(set().union(*counts.values()), key=lambda n: -max(c.get(n, 0) for c in counts.values()))
    print(f"calls per {DONE[scenario][:-1]}: {'raw':>8} {'wsroute':>8}")
    for name in names:
        print(f"  {name:16} {counts['raw'].get(name, 0):8.2f} {counts['wsroute_app'].get(name, 0):8.2f}")


if __name__ == "__main__":
    main()
