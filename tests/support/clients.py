"""Clients to a server on 127.0.0.1 (never a proxy from the environment), and what tests
read from them.

`connect` and `eventually` are ``tests/server.py``'s, re-exported so that tests import
every client helper from here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server import connect, eventually

__all__ = ["assert_silent", "close_seen", "connect", "eventually", "http", "recv", "refused", "ws_connect"]

HOST = "127.0.0.1"


def ws_connect(port: int, path: str) -> Any:
    """``async with ws_connect(port, path) as ws``: a WebSocket client to 127.0.0.1, no proxy."""
    return connect(f"ws://{HOST}:{port}{path}", open_timeout=10, close_timeout=2)


def http(port: int) -> httpx.AsyncClient:
    """An async HTTP client for 127.0.0.1:`port` that ignores proxy settings."""
    return httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=10, trust_env=False)


async def recv(ws: Any, timeout: float = 5.0) -> Any:
    """The next message, or AssertionError after `timeout` seconds."""
    try:
        return await asyncio.wait_for(ws.recv(), timeout)
    except TimeoutError:
        raise AssertionError(f"no message within {timeout}s") from None


async def assert_silent(ws: Any, wait: float = 0.3) -> None:
    """Fail if a message arrives within `wait` seconds."""
    try:
        message = await asyncio.wait_for(ws.recv(), wait)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected message {message!r}")


async def close_seen(client: Any, timeout: float = 5.0) -> tuple[int, str]:
    """Read until the server's close frame (messages before it are skipped); its (code, reason)."""
    with pytest.raises(ConnectionClosed) as info:
        async with asyncio.timeout(timeout):
            while True:
                await client.recv()
    assert info.value.rcvd is not None, "no close frame from the server"
    return info.value.rcvd.code, info.value.rcvd.reason


async def refused(url: str, **options: Any) -> Any:
    """The HTTP response that refused the handshake to `url` (fails if it was accepted)."""
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, **options):
            pass
    return info.value.response
