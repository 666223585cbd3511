"""Run a real uvicorn server on 127.0.0.1 in a background thread, for integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

WS_IMPLEMENTATIONS = ("websockets-sansio", "wsproto", "wsroute.fastlane:FastlaneProtocol")


@contextlib.contextmanager
def serve(app: Any, *, ws: str = "websockets-sansio", **options: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on a free port; yields ``"127.0.0.1:PORT"``; stops it after."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, ws=ws, log_level="warning", lifespan="on", **options
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


async def eventually(check: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Wait until `check()` is true, polling, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def connect(url: str, **options: Any) -> Any:
    """`websockets.connect` straight to 127.0.0.1: no proxy from the environment."""
    import websockets

    options.setdefault("proxy", None)
    options.setdefault("open_timeout", 5)
    options.setdefault("close_timeout", 5)
    return websockets.connect(url, **options)
