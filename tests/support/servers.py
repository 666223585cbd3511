"""Other ASGI servers (hypercorn, granian) in subprocesses, for `tests/test_servers.py`.

The same shape as `support.processes.uvicorn_processes`: one server process on a free port
of 127.0.0.1 with one worker, in a process group of its own, its output in a temporary file;
ready once ``GET /health`` answers 200; SIGTERM'd (then SIGKILL'd) afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from support.processes import HOST, ROOT, TESTS_DIR, _ready, free_port, stop_process

SERVERS = ("hypercorn", "granian")
"""The servers `tests/test_servers.py` runs on (uvicorn has the rest of the suite)."""


def installed(server: str) -> bool:
    """True when the `server` package can be imported here."""
    return importlib.util.find_spec(server) is not None


def command(server: str, app: str, port: int) -> list[str]:
    """The command line serving `app` (``module:attribute``, imported from tests/) with
    `server` on 127.0.0.1:`port`, one worker, warnings and errors logged only."""
    if server == "hypercorn":
        return [
            sys.executable, "-m", "hypercorn", app,
            "--bind", f"{HOST}:{port}",
            "--workers", "1",
            "--log-level", "WARNING",
            "--graceful-timeout", "2",
        ]  # fmt: skip
    if server == "granian":
        return [
            sys.executable, "-m", "granian", app,
            "--interface", "asgi",
            "--host", HOST,
            "--port", str(port),
            "--workers", "1",
            "--log-level", "warning",
            "--workers-kill-timeout", "5",
        ]  # fmt: skip
    raise ValueError(f"unknown server {server!r}")


@dataclass
class ServerRun:
    """A running server process: its port, the process (the group leader) and its log."""

    server: str
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def host(self) -> str:
        """``"127.0.0.1:PORT"``."""
        return f"{HOST}:{self.port}"

    def output(self) -> str:
        """Everything the server wrote so far (stdout and stderr)."""
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")
        self.log.seek(0, os.SEEK_END)
        return text

    def terminate(self) -> None:
        """SIGTERM to the server's main process only, as a deploy (or ``docker stop``) sends
        it: the server decides what its workers get."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        """The exit code, once the main process has exited (TimeoutExpired after `timeout` s)."""
        return self.process.wait(timeout)


@contextlib.contextmanager
def server_process(server: str, app: str, env: dict[str, str] | None = None) -> Iterator[ServerRun]:
    """`server` serving `app` (from tests/) on a free port; yields it once ``/health`` is 200.

    The whole process group is stopped afterwards whatever happens (SIGTERM, SIGKILL after
    10 s), also when the test already terminated it.
    """
    port = free_port()
    path = os.pathsep.join([str(TESTS_DIR), str(ROOT), os.environ.get("PYTHONPATH", "")])
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command(server, app, port),
            cwd=TESTS_DIR,
            env={**os.environ, "PYTHONPATH": path, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        run = ServerRun(server, port, process, log)
        try:
            deadline = time.monotonic() + 20
            while not _ready(port, "/health"):
                if process.poll() is not None:
                    raise AssertionError(f"{server} {app} exited with {process.returncode}:\n{run.output()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{server} {app} did not start on port {port}:\n{run.output()}")
                time.sleep(0.05)
            yield run
        finally:
            stop_process(process)
            # The group may outlive its leader (a worker the leader left behind).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def read_events(path: Path) -> list[dict[str, Any]]:
    """The JSON lines `apps.servers_app` wrote to `path` so far (none if no file yet)."""
    import json

    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
