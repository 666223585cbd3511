"""Clients to a server on 127.0.0.1 (never a proxy from the environment), and what tests
read from them.

`connect` opens a bare `websockets` connection: the suite uses its whole API (the transport,
``close_code``, ``wait_closed``…), which the kit's `wsroute.testing.connect` wraps in a
`Client`. `eventually` is the kit's, re-exported.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from support.processes import PLAIN_HTTP
from wsroute.testing import Client, eventually

__all__ = ["assert_silent", "close_seen", "connect", "eventually", "http", "recv", "refused", "ws_connect"]

HOST = "127.0.0.1"


def connect(url: str, **options: Any) -> Any:
    """`websockets.connect` to `url` with no proxy from the environment (5 s to open and to close)."""
    options.setdefault("proxy", None)
    options.setdefault("open_timeout", 5)
    options.setdefault("close_timeout", 5)
    return websockets.connect(url, **options)


def ws_connect(port: int, path: str) -> Any:
    """``async with ws_connect(port, path) as ws``: a WebSocket client to 127.0.0.1, no proxy."""
    return connect(f"ws://{HOST}:{port}{path}", open_timeout=10, close_timeout=2)


def http(port: int) -> httpx.AsyncClient:
    """An async HTTP client for 127.0.0.1:`port` that ignores proxy settings."""
    return httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}", timeout=10, trust_env=False, verify=PLAIN_HTTP
    )


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
    """The server's close frame on a bare connection (messages before it are skipped): the
    kit's `Client.expect_close`."""
    return await Client(client, "the server", timeout).expect_close(ignore_messages=True)


async def refused(url: str, **options: Any) -> Any:
    """The HTTP response that refused the handshake to `url` (fails if it was accepted)."""
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, **options):
            pass
    return info.value.response
