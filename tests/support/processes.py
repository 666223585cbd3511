"""Servers in subprocesses: free ports, polling, uvicorn processes and stopping them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx

HOST = "127.0.0.1"
TESTS_DIR = Path(__file__).resolve().parent.parent
ROOT = TESTS_DIR.parent

# An httpx client loads certifi's CA bundle when it is made (~30 ms, paid by every helper that
# makes one per call). The tests speak plain HTTP to 127.0.0.1: they pass this context, made
# once and never used for a handshake, as `verify=`.
PLAIN_HTTP = ssl.create_default_context()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check()` (synchronously) until true, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> int | None:
    """SIGTERM the process's group (uvicorn and any workers), SIGKILL if it lingers; its exit code.

    The process must lead a group of its own (``start_new_session=True``): the signal goes
    to the whole group.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


@contextlib.contextmanager
def uvicorn_processes(
    app: str, env: dict[str, str], *, count: int = 1, workers: int = 1, ready_path: str = "/health"
) -> Iterator[list[int]]:
    """Run `count` ``uvicorn <app>`` subprocesses (app imported from tests/), each on a free
    port; yields their ports once `ready_path` answers on each.

    They start side by side (startup is mostly imports); all of them, and their workers,
    are terminated afterwards whatever happens.
    """
    procs: list[tuple[subprocess.Popen[bytes], int, Any]] = []
    logs = contextlib.ExitStack()
    try:
        for _ in range(count):
            port = free_port()
            command = [
                sys.executable,
                "-m",
                "uvicorn",
                app,
                "--app-dir",
                str(TESTS_DIR),
                "--host",
                HOST,
                "--port",
                str(port),
                "--log-level",
                "warning",
            ]
            if workers > 1:
                command += ["--workers", str(workers)]
            # A file, not a pipe: a server that logs a lot must never block on a full pipe.
            log = logs.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - closed by the stack
            proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
            procs.append((proc, port, log))
        deadline = time.monotonic() + 20
        for proc, port, log in procs:
            while not _ready(port, ready_path):
                if proc.poll() is not None:
                    log.seek(0)
                    err = log.read().decode(errors="replace")
                    raise AssertionError(f"uvicorn {app} exited with {proc.returncode}:\n{err}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"uvicorn {app} did not start on port {port}")
                time.sleep(0.05)
        yield [port for _, port, _ in procs]
    finally:
        for proc, _, _ in procs:
            stop_process(proc)
        logs.close()


def _ready(port: int, path: str) -> bool:
    if not port_open(port):
        return False
    try:
        return (
            httpx.get(
                f"http://{HOST}:{port}{path}", timeout=1, trust_env=False, verify=PLAIN_HTTP
            ).status_code
            == 200
        )
    except httpx.HTTPError:
        return False


class ServerProcess:
    """``uvicorn APP`` (e.g. ``apps.multiplex_page:app``, from tests/) in a subprocess,
    restartable on the same port; `log` keeps every run's output."""

    def __init__(self, app: str, port: int, log: IO[bytes]) -> None:
        self.app = app
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.log = log  # every run's output, for failure messages

    def output(self, since: int = 0) -> str:
        self.log.seek(since)
        text = self.log.read().decode(errors="replace")
        self.log.seek(0, os.SEEK_END)
        return text

    def mark(self) -> int:
        """Where the log ends now: `output(since=mark)` is what came after."""
        self.log.seek(0, os.SEEK_END)
        return self.log.tell()

    def start(self) -> None:
        assert self.process is None
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                self.app,
                "--app-dir",
                str(TESTS_DIR),
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--ws",
                "websockets-sansio",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not start:\n{self.output()}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM: uvicorn's graceful shutdown (a deploy's restart)."""
        process, self.process = self.process, None
        if process is not None:
            stop_process(process)

    def kill(self) -> None:
        """SIGKILL: a crash; the kernel drops every connection."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@contextlib.contextmanager
def server_process(app: str) -> Iterator[ServerProcess]:
    """`ServerProcess` of `app` on a free port, started, with its log in a temporary file;
    stopped on exit."""
    with tempfile.TemporaryFile() as log:
        process = ServerProcess(app, free_port(), log)
        process.start()
        try:
            yield process
        finally:
            process.stop()
