"""Run a real uvicorn server on 127.0.0.1 in a background thread, for integration tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from wsroute.testing import FASTLANE, WS_IMPLEMENTATIONS, eventually

__all__ = ["FASTLANE", "WS_IMPLEMENTATIONS", "ThreadServer", "connect", "eventually", "serve"]


class ThreadServer:
    """uvicorn serving `app` on a free port of 127.0.0.1 in a daemon thread."""

    def __init__(self, app: Any, *, ws: str = "websockets-sansio", **options: Any) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, ws=ws, log_level="warning", lifespan="on", **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0

    def start(self) -> str:
        """Start it and wait until it listens; ``"127.0.0.1:PORT"``."""
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        self.port = int(self.server.servers[0].sockets[0].getsockname()[1])
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout: float = 15.0) -> float:
        """Shut down gracefully (so `leave` handlers run); the seconds it took.

        AssertionError if it has not stopped within `timeout`.
        """
        started = time.monotonic()
        self.server.should_exit = True
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"uvicorn did not shut down within {timeout}s"
        return time.monotonic() - started

    def __enter__(self) -> ThreadServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        # No assertion here: a test that already failed must not be hidden by a second error.
        if self.thread.is_alive():
            self.server.should_exit = True
            self.thread.join(15)


@contextlib.contextmanager
def serve(app: Any, *, ws: str = "websockets-sansio", **options: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on a free port; yields ``"127.0.0.1:PORT"``; stops it after."""
    with ThreadServer(app, ws=ws, **options) as server:
        yield f"127.0.0.1:{server.port}"


def connect(url: str, **options: Any) -> Any:
    """`websockets.connect` straight to 127.0.0.1: no proxy from the environment."""
    import websockets

    options.setdefault("proxy", None)
    options.setdefault("open_timeout", 5)
    options.setdefault("close_timeout", 5)
    return websockets.connect(url, **options)
