"""Redis for the tests: the shared server at 127.0.0.1:6379, and private ``redis-server``
instances of our own that a test may kill and restart."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Iterator

import redis

from support.ci import unavailable
from support.processes import free_port, wait_until

HOST = "127.0.0.1"
SHARED_PORT = 6379
SHARED_URL = f"redis://{HOST}:{SHARED_PORT}/0"
START_HINT = (
    f"Redis not reachable at {HOST}:{SHARED_PORT}: start it with: redis-server --daemonize yes "
    f"--bind {HOST} --port {SHARED_PORT} --save '' --appendonly no"
)


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
        unavailable(START_HINT)
    return SHARED_URL


def client(port: int = SHARED_PORT) -> redis.Redis:
    """A synchronous redis-py client for inspecting a Redis (CLIENT LIST, PUBSUB…)."""
    return redis.Redis(host=HOST, port=port, socket_timeout=5, protocol=2)


def connections_named(name: str, port: int = SHARED_PORT) -> int:
    """How many connections to the Redis on `port` carry the client name `name`."""
    with client(port) as r:
        return sum(1 for c in r.client_list() if c.get("name") == name)


class PrivateRedis:
    """A redis-server of our own on a free port, so outages never touch the shared one. With
    `persist_dir` it keeps its data across a kill and restart (an append-only file, synced at
    every write): what a failover or a restart with persistence is. With `snapshots` as well,
    it keeps only what its last ``SAVE`` wrote there: a restart from an older snapshot."""

    def __init__(
        self, unix_socket: str | None = None, persist_dir: str | None = None, snapshots: bool = False
    ) -> None:
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.unix_socket = unix_socket
        self.persist_dir = persist_dir
        self.snapshots = snapshots
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the server on the same port and wait until it answers PING."""
        exe = shutil.which("redis-server")
        if exe is None:
            unavailable("redis-server is not on PATH: apt-get install redis-server")
        command = [exe, "--port", str(self.port), "--bind", HOST, "--save", ""]
        if self.persist_dir is None:
            command += ["--appendonly", "no"]
        elif self.snapshots:
            command += ["--dir", self.persist_dir, "--appendonly", "no"]
        else:
            command += ["--dir", self.persist_dir, "--appendonly", "yes", "--appendfsync", "always"]
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
def private_redis(
    unix_socket: str | None = None, persist_dir: str | None = None, snapshots: bool = False
) -> Iterator[PrivateRedis]:
    """A started `PrivateRedis` (also on `unix_socket` if given; keeping its data in
    `persist_dir` if given, as snapshots if `snapshots`), killed afterwards whatever happens."""
    server = PrivateRedis(unix_socket, persist_dir, snapshots)
    try:
        server.start()
        yield server
    finally:
        server.kill()
