"""Unit tests of registration: prefixes, included routers, route options, class dependencies
and constrained text messages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, cast

import pytest
from fastapi import Depends, HTTPException
from pydantic import Field

from wsroute import Channel, HandshakeRequest, InvalidMessage, Reject, UnsupportedFrame, WsRouter
from wsroute.injection import Context, analyze
from wsroute.messages import make_decoder
from wsroute.routes import RouteOptions


def test_prefix_without_trailing_slash() -> None:
    ws = WsRouter(prefix="/v1")

    @ws.message("/")
    async def root(data: str) -> None: ...

    assert [h.path for h in ws.table.handlers] == ["/v1"]
    assert ws.table.match("message", "/v1")


def test_include_router_with_a_parameter_prefix_reanalyzes_handlers() -> None:
    tenants = WsRouter()

    @tenants.message("/chat")
    async def chat(data: str, tenant: str, channel: Channel) -> None: ...

    (param,) = tenants.table.handlers[0].plan.interface.params
    assert (param.where, param.key) == ("query", "tenant")
    app_router = WsRouter()
    app_router.include_router(tenants, prefix="/{tenant}")
    handler = app_router.table.handlers[0]
    assert handler.path == "/{tenant}/chat"
    assert handler.rank == 1  # it has a parameter now: ranked after static paths
    (param,) = handler.plan.interface.params
    assert (param.where, param.key) == ("path", "tenant")
    (matched, params), = app_router.table.match("message", "/acme/chat")
    assert matched is handler and params == {"tenant": "acme"}


def test_constrained_text_message() -> None:
    decode = make_decoder(Annotated[str, Field(max_length=3)])
    assert decode("abc", None) == "abc"
    with pytest.raises(InvalidMessage, match="at most 3"):
        decode("abcd", None)
    with pytest.raises(UnsupportedFrame):
        decode(None, b"abc")


def test_pydantic_constraints_in_annotated_apply_to_params_and_message() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from pydantic import StringConstraints
    from starlette.testclient import WebSocketDenialResponse
    from starlette.websockets import WebSocketDisconnect

    ws = WsRouter()

    @ws.message("/rooms/{room}")
    async def said(
        data: Annotated[str, StringConstraints(max_length=3)],
        room: Annotated[str, StringConstraints(pattern=r"^[a-z]+$")],
        channel: Channel,
    ) -> None:
        await channel.send(f"{room}: {data}")

    app = FastAPI()
    ws.install(app)
    with TestClient(app) as client:
        with pytest.raises(WebSocketDenialResponse) as denied, client.websocket_connect("/rooms/ABC1"):
            pass
        assert denied.value.status_code == 422
        with client.websocket_connect("/rooms/abc") as socket:
            socket.send_text("hey")
            assert socket.receive_text() == "abc: hey"
            socket.send_text("too long")
            with pytest.raises(WebSocketDisconnect) as closed:
                socket.receive_text()
        assert closed.value.code == 1007


def test_exception_handler_decorators_stack() -> None:
    ws = WsRouter()

    @ws.exception_handler(InvalidMessage)
    @ws.exception_handler(UnsupportedFrame)
    async def bad_input(channel: Channel, exc: Exception) -> None: ...

    assert set(ws.settings.exception_handlers) == {InvalidMessage, UnsupportedFrame}


def test_route_options_survive_include_router_and_are_checked_once() -> None:
    inner = WsRouter()

    @inner.message("/chat", rate_limit=[5, 1.0], sends=[str], name="talk")  # type: ignore[arg-type]
    async def chat(data: str) -> None: ...

    outer = WsRouter()
    outer.include_router(inner, prefix="/v1")
    (handler,) = outer.table.handlers
    assert handler.options == RouteOptions(rate_limit=(5, 1.0), sends=(str,), name="talk")
    assert (handler.path, handler.name, handler.rate_limit) == ("/v1/chat", "talk", (5, 1.0))
    with pytest.raises(ValueError, match=r"^rate_limit=\(0, 1\) on @message\('/x'\): use"):
        RouteOptions(rate_limit=(0, 1), decorator="@message('/x')")


def test_topic_options_survive_include_router() -> None:
    """History and presence configured on an included router's pattern apply to the app's
    topics (the chat configures them on its rooms router)."""
    inner = WsRouter()

    @inner.join("/rooms/{room}")
    async def enter() -> None: ...

    inner.topic("/rooms/{room}", history=7, history_ttl=60.0, recovery_limit=5, presence=True)
    outer = WsRouter()
    outer.include_router(inner, prefix="/v1")
    options = outer.broker.topics.get("/v1/rooms/lobby")
    assert options is not None and options.pattern == "/v1/rooms/{room}"
    kept = (options.history, options.history_ttl, options.recovery_limit, options.presence)
    assert kept == (7, 60.0, 5, True)
    assert outer.broker.has_presence("/v1/rooms/lobby") and not outer.broker.has_presence("/rooms/lobby")


class _Yields:
    def __call__(self) -> Iterator[int]:
        yield 1


class _Awaits:
    async def __call__(self) -> int:
        return 1


async def test_a_class_dependency_builds_an_instance_whatever_its_call_does() -> None:
    # Depends(cls) calls the class, as FastAPI does: its instances' __call__ is not what runs.
    async def handler(
        data: str, a: Annotated[_Yields, Depends()], b: Annotated[_Awaits, Depends()]
    ) -> None: ...

    plan = analyze(handler, "message", set())
    scope = {"type": "websocket", "path": "/x", "query_string": b"", "headers": []}
    values = await plan.connection_values(Context(HandshakeRequest(scope), cast(Any, None), cast(Any, None)))
    assert isinstance(values["a"], _Yields) and isinstance(values["b"], _Awaits)


def test_an_http_exception_refuses_with_its_status_detail_and_headers() -> None:
    reject = Reject.from_http(HTTPException(401, "no token", {"WWW-Authenticate": "Bearer"}))
    assert (reject.status_code, reject.detail) == (401, "no token")
    assert reject.headers == {"WWW-Authenticate": "Bearer"}
