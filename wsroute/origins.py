"""The Origin check of the handshake: a defence against cross-site WebSocket hijacking.

Browsers send ``Origin`` with every WebSocket handshake and let any page open a socket to
any host, cookies included; the server is the one that must refuse foreign pages.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import Scope

_DEFAULT_PORTS = {"http": "80", "ws": "80", "https": "443", "wss": "443"}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def origin_allowed(scope: Scope, allowed: Iterable[str]) -> bool:
    """Same-origin, listed, or no Origin at all (a non-browser client): allowed.

    Same origin means the Origin's host:port equals the request's Host header.
    """
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    allowed = tuple(allowed)
    if "*" in allowed or origin in allowed:
        return True
    host = _header(scope, b"host")
    if not host:
        return False
    parts = urlsplit(origin)
    netloc = parts.netloc
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default and netloc.endswith(":" + default):
        netloc = netloc[: -len(default) - 1]
    host = host.strip().lower()
    for port in ("80", "443"):
        if host.endswith(":" + port) and default == port:
            host = host[: -len(port) - 1]
    return bool(netloc) and netloc == host
