"""Unit tests: Origin policy, disconnect codes, route ranks and matching."""

from __future__ import annotations

import pytest

from wsroute.connection import status_of
from wsroute.origins import origin_allowed
from wsroute.routes import compile_route, default_rank, route_path


def scope(origin: str | None, host: str = "chat.example:8000") -> dict[str, object]:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "websocket", "headers": headers, "path": "/"}


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "chat.example:8000", (), True),
        ("http://chat.example:8000", "chat.example:8000", (), True),
        ("https://chat.example", "chat.example", (), True),
        ("https://chat.example:443", "chat.example", (), True),
        ("http://chat.example", "chat.example:80", (), True),
        ("http://evil.example", "chat.example:8000", (), False),
        ("http://chat.example:9000", "chat.example:8000", (), False),
        ("null", "chat.example:8000", (), False),
        ("https://app.example", "api.example", ("https://app.example",), True),
        ("https://other.example", "api.example", ("*",), True),
    ],
)
def test_origin_allowed(origin: str | None, host: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert origin_allowed(scope(origin, host), allowed) is ok


def test_status_of_reports_drops_as_1006() -> None:
    assert status_of({"type": "websocket.disconnect", "code": 1005}).code == 1006
    assert status_of({"type": "websocket.disconnect", "code": 1005, "reason": ""}).code == 1005
    assert status_of({"type": "websocket.disconnect", "code": 4000, "reason": "x"}).reason == "x"
    assert status_of({"type": "websocket.disconnect", "code": 1012}).code == 1012


def test_default_ranks_put_static_first() -> None:
    assert default_rank("/echo") < default_rank("/{room}") < default_rank("/{rest:path}")


def test_anonymous_segments_may_repeat() -> None:
    regex, convertors = compile_route("/{_}/{_}/{name}")
    assert regex.match("/a/b/c") and len(convertors) == 3


def test_route_path_strips_root_path() -> None:
    assert route_path({"path": "/api/echo", "root_path": "/api"}) == "/echo"
    assert route_path({"path": "/apiecho", "root_path": "/api"}) == "/apiecho"
    assert route_path({"path": "/echo"}) == "/echo"


async def test_denial_uses_the_extension_when_offered_else_closes_before_accept() -> None:
    from starlette.types import Message

    from wsroute.connection import deny
    from wsroute.guards import Reject

    sent: list[Message] = []

    async def send(event: Message) -> None:
        sent.append(event)

    with_extension = {"type": "websocket", "extensions": {"websocket.http.response": {}}, "headers": []}
    await deny(with_extension, send, Reject(401, "no token", {"WWW-Authenticate": "Bearer"}))
    assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 401
    assert (b"www-authenticate", b"Bearer") in sent[0]["headers"]
    assert sent[1] == {"type": "websocket.http.response.body", "body": b'{"detail":"no token"}'}

    sent.clear()
    await deny({"type": "websocket", "headers": []}, send, Reject(401, "no token"))
    assert sent == [{"type": "websocket.close", "code": 1008}]
