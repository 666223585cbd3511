"""Helpers for tests that need Redis: reachability, private redis-server instances,
uvicorn subprocesses, and WebSocket/HTTP clients that only talk to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect

HOST = "127.0.0.1"
SHARED_PORT = 6379
SHARED_URL = f"redis://{HOST}:{SHARED_PORT}/0"
START_HINT = (
    f"Redis not reachable at {HOST}:{SHARED_PORT}: start it with: redis-server --daemonize yes "
    f"--bind {HOST} --port {SHARED_PORT} --save '' --appendonly no"
)
TESTS_DIR = Path(__file__).resolve().parent
ROOT = TESTS_DIR.parent


def redis_reachable(port: int = SHARED_PORT, timeout: float = 1.0) -> bool:
    """True when a Redis answers PING on 127.0.0.1:`port`."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def require_redis() -> str:
    """The shared Redis URL; skips the test when Redis is down (fails instead when CI=true)."""
    if not redis_reachable():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(START_HINT)
        pytest.skip(START_HINT)
    return SHARED_URL


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


def wait_until(check: Any, timeout: float, what: str) -> None:
    """Poll `check()` (synchronously) until true, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def client(port: int = SHARED_PORT) -> redis.Redis:
    """A synchronous redis-py client for inspecting a Redis (CLIENT LIST, PUBSUB…)."""
    return redis.Redis(host=HOST, port=port, socket_timeout=5, protocol=2)


def connections_named(name: str, port: int = SHARED_PORT) -> int:
    """How many connections to the Redis on `port` carry the client name `name`."""
    with client(port) as r:
        return sum(1 for c in r.client_list() if c.get("name") == name)


class PrivateRedis:
    """A redis-server of our own on a free port, so outages never touch the shared one."""

    def __init__(self, unix_socket: str | None = None) -> None:
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.unix_socket = unix_socket
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the server on the same port and wait until it answers PING."""
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not on PATH")
        command = [exe, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        if self.unix_socket is not None:
            command += ["--unixsocket", self.unix_socket, "--unixsocketperm", "700"]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: redis_reachable(self.port, 0.2), 10, f"redis-server on port {self.port}")

    def kill(self) -> None:
        """SIGKILL the server (a crash: no goodbye to the clients) and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@contextlib.contextmanager
def private_redis(unix_socket: str | None = None) -> Iterator[PrivateRedis]:
    """A started `PrivateRedis` (also on `unix_socket` if given), killed afterwards whatever happens."""
    server = PrivateRedis(unix_socket)
    try:
        server.start()
        yield server
    finally:
        server.kill()


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
                sys.executable, "-m", "uvicorn", app, "--app-dir", str(TESTS_DIR), "--host", HOST,
                "--port", str(port), "--log-level", "warning",
            ]
            if workers > 1:
                command += ["--workers", str(workers)]
            # A file, not a pipe: a server that logs a lot must never block on a full pipe.
            log = logs.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - closed by the stack
            proc = subprocess.Popen(
                command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                stderr=log, start_new_session=True,
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


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's group (uvicorn and any workers), SIGKILL if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _ready(port: int, path: str) -> bool:
    if not port_open(port):
        return False
    try:
        return httpx.get(f"http://{HOST}:{port}{path}", timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def http(port: int) -> httpx.AsyncClient:
    """An async HTTP client for 127.0.0.1:`port` that ignores proxy settings."""
    return httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=10, trust_env=False)


def ws_connect(port: int, path: str) -> Any:
    """``async with ws_connect(port, path) as ws``: a WebSocket client to 127.0.0.1, no proxy."""
    return connect(f"ws://{HOST}:{port}{path}", proxy=None, open_timeout=10, close_timeout=2)


async def recv(ws: ClientConnection, timeout: float = 5.0) -> str | bytes:
    """The next message, or AssertionError after `timeout` seconds."""
    try:
        return await asyncio.wait_for(ws.recv(), timeout)
    except TimeoutError:
        raise AssertionError(f"no message within {timeout}s") from None


async def assert_silent(ws: ClientConnection, wait: float = 0.3) -> None:
    """Fail if a message arrives within `wait` seconds."""
    try:
        message = await asyncio.wait_for(ws.recv(), wait)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message {message!r}")
