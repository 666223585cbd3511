"""The app's own middleware and wsroute sockets, over a real uvicorn server.

`install` puts wsroute's entry innermost among the app's middleware: every middleware the
user added (before or after `install`) sees the socket, while Starlette's exception
middleware and router are skipped.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextvars import ContextVar

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.exceptions import InvalidStatus

from support.clients import connect
from wsroute import Channel, Guard, HandshakeRequest, RegistrationError, Reject, WsRouter
from wsroute.testing import WS_IMPLEMENTATIONS, ServerThread, serve

# Set by middleware, read by handlers: how logging setups carry a request id.
trace_id: ContextVar[str] = ContextVar("trace_id", default="unset")


class Tenant:
    """Pure ASGI middleware: puts the tenant from a header into the scope's state, and the
    trace id into a context variable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            headers = dict(scope["headers"])
            scope.setdefault("state", {})["tenant"] = headers.get(b"x-tenant", b"none").decode()
            trace_id.set(headers.get(b"x-trace", b"none").decode())
        await self.app(scope, receive, send)


class Blocklist:
    """Pure ASGI middleware: refuses sockets from a blocked client before any route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and (b"x-blocked", b"1") in scope["headers"]:
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)


class Member(Guard):
    """A guard that reads what the middleware left, and builds a URL with `url_for`."""

    def __init__(self, tenant: str, home: str) -> None:
        self.tenant = tenant
        self.home = home

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> Member:
        tenant = request.state.tenant
        if tenant == "none":
            raise Reject(401, "no tenant")
        return cls(tenant, request.url_for("home", tenant=tenant).path)


def build_app() -> FastAPI:
    app = FastAPI()
    ws = WsRouter()

    @app.get("/tenants/{tenant}", name="home")
    async def home(tenant: str) -> str:
        return tenant

    @ws.message("/whoami")
    async def whoami(data: str, channel: Channel, member: Member) -> None:
        await channel.send(f"{member.tenant} {member.home} {data} trace={trace_id.get()}")

    app.add_middleware(Tenant)  # before install
    ws.install(app)
    app.add_middleware(Blocklist)  # after install
    return app


@pytest.fixture(scope="module", params=WS_IMPLEMENTATIONS)
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    with ServerThread(build_app(), ws=request.param) as address:
        yield address


async def test_middleware_added_before_and_after_install_sees_the_socket(server: str) -> None:
    headers = {"X-Tenant": "acme", "X-Trace": "t-42"}
    async with connect(f"ws://{server}/whoami", additional_headers=headers) as ws:
        await ws.send("hi")
        # A context variable the middleware set is seen by the handler, message after message.
        assert await ws.recv() == "acme /tenants/acme hi trace=t-42"
        await ws.send("again")
        assert await ws.recv() == "acme /tenants/acme again trace=t-42"


async def test_guard_sees_what_middleware_left_and_rejects_without_it(server: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://{server}/whoami"):
            pass
    assert refused.value.response.status_code == 401


async def test_outer_middleware_can_refuse_before_wsroute_runs(server: str) -> None:
    headers = {"X-Tenant": "acme", "X-Blocked": "1"}
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://{server}/whoami", additional_headers=headers):
            pass
    assert refused.value.response.status_code == 403


async def test_install_after_the_app_served_a_request_is_an_error() -> None:
    app = FastAPI()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        assert (await client.get("/nothing")).status_code == 404
    with pytest.raises(RegistrationError, match="before serving it"):
        WsRouter().install(app)


async def test_trusted_host_middleware_refuses_a_socket_with_a_foreign_host() -> None:
    """The DNS-rebinding defence the guards page recommends works for sockets."""
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    app = FastAPI()
    ws = WsRouter()

    @ws.message("/echo")
    async def echo(data: str, channel: Channel) -> None:
        await channel.send(data)

    ws.install(app)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1"])
    async with serve(app) as address:
        host, port = address.rsplit(":", 1)
        # Same-origin to wsroute's own check (Origin matches Host), but not a host we serve:
        # what a DNS-rebinding page sends. (A raw request: clients set Host themselves.)
        rebound = (
            f"GET /echo HTTP/1.1\r\nHost: evil.example:{port}\r\nOrigin: http://evil.example:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(rebound.encode())
            status_line = await asyncio.wait_for(reader.readline(), 5)
        finally:
            writer.close()
        assert status_line.split()[1] == b"400", status_line
        async with connect(f"ws://{address}/echo") as client:
            await client.send("ok")
            assert await client.recv() == "ok"


def _await_chain() -> list[str]:
    """The frames the running handler was called through, outermost first: a suspended
    socket holds each of them."""
    names: list[str] = []
    frame = sys._getframe(1)
    while frame is not None:
        names.append(frame.f_code.co_qualname)
        frame = frame.f_back
    return names[::-1]


def _chain_app(*, with_middleware: bool) -> FastAPI:
    app = FastAPI()
    ws = WsRouter()

    @ws.message("/chain")
    async def chain(data: str, channel: Channel) -> None:
        await channel.send(" ".join(_await_chain()))

    ws.install(app)
    if with_middleware:
        app.add_middleware(Tenant)
    return app


@pytest.mark.parametrize("ws_impl", WS_IMPLEMENTATIONS)
async def test_an_open_socket_holds_no_frames_of_fastapis_http_only_layers(ws_impl: str) -> None:
    # Each frame a socket is suspended through is held for as long as it stays open, and
    # walked by the cycle collector: with no middleware of the app's own, a socket skips
    # FastAPI's error, telemetry and body-limit layers (they only act on HTTP requests).
    async with (
        serve(_chain_app(with_middleware=False), ws=ws_impl) as address,
        connect(f"ws://{address}/chain") as client,
    ):
        await client.send("?")
        chain = str(await client.recv()).split()
    assert "BaseConnection.run" in chain
    skipped = ("ServerErrorMiddleware", "ExceptionTelemetryMiddleware", "AppBodyLimitMiddleware")
    assert not [name for name in chain if name.split(".")[0] in skipped], chain
    # Middleware the user added keeps them all in the path: it must see every socket.
    async with (
        serve(_chain_app(with_middleware=True), ws=ws_impl) as address,
        connect(f"ws://{address}/chain", additional_headers={"X-Tenant": "a"}) as client,
    ):
        await client.send("?")
        chain = str(await client.recv()).split()
    assert "Tenant.__call__" in chain
    assert "ServerErrorMiddleware.__call__" in chain
    assert chain.index("Tenant.__call__") < chain.index("BaseConnection.run")
