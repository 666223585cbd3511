"""The chat example (``python -m examples.chat``) in a subprocess, for its HTTP, WebSocket and
browser tests; it runs with a known token secret and admin token so tests can forge tokens."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx

from support.processes import HOST, PLAIN_HTTP, ROOT, free_port, stop_process

# The example is not installed: tests that import its modules (to forge a token) need the
# repository root on the path, as ``python -m examples.chat`` has it.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECRET = "test-secret-for-the-chat-example"
ADMIN = "test-admin-token"


def chat_env(db: Path, **extra: str) -> dict[str, str]:
    """The environment for a chat server: ours minus any WSROUTE_* setting, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WSROUTE_")}
    env.update(
        {
            "WSROUTE_CHAT_SECRET": SECRET,
            "WSROUTE_CHAT_ADMIN_TOKEN": ADMIN,
            "WSROUTE_CHAT_DB": str(db),
            "WSROUTE_CHAT_DATA": str(db.parent),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class ChatServer:
    """``python -m examples.chat`` in a subprocess on a fixed port; can be stopped and started again."""

    def __init__(
        self,
        env: dict[str, str],
        args: tuple[str, ...] = (),
        port: int | None = None,
        cwd: Path | None = None,
    ) -> None:
        """`cwd`: where the server runs (its default data folder is ``cwd/.chat-data``); the
        repository root unless given, and then the repository is put on ``PYTHONPATH``."""
        self.env = env if cwd is None else {**env, "PYTHONPATH": str(ROOT)}
        self.cwd = cwd or ROOT
        self.args = args
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()

    @property
    def http(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def start(self, timeout: float = 20) -> None:
        assert self.process is None
        command = [sys.executable, "-m", "examples.chat", "--host", HOST, "--port", str(self.port)]
        command += [*self.args, "--log-level", "warning"]
        # A file, not a pipe: a chatty server never blocks on a full pipe. A new session, so
        # stop() reaches uvicorn's workers too.
        self.process = subprocess.Popen(
            command,
            cwd=self.cwd,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if (
                    httpx.get(
                        f"{self.http}/api/health", timeout=1, trust_env=False, verify=PLAIN_HTTP
                    ).status_code
                    == 200
                ):
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the chat example did not start:\n{self.output()}")
            time.sleep(0.05)

    def stop(self) -> int | None:
        """SIGTERM the server (and its workers); SIGKILL if it lingers. Returns its exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        return stop_process(process, timeout=15)

    def close(self) -> None:
        self.stop()
        self._log.close()


@contextlib.contextmanager
def chat_server(env: dict[str, str], args: tuple[str, ...] = ()) -> Iterator[ChatServer]:
    """A started `ChatServer`, stopped afterwards whatever happens."""
    server = ChatServer(env, args)
    try:
        server.start()
        yield server
    finally:
        server.close()
