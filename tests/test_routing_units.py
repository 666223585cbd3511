"""Unit tests of registration: prefixes, included routers and constrained text messages."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field

from wsroute import Channel, InvalidMessage, UnsupportedFrame, WsRouter
from wsroute.injection import ParamSource, make_decoder


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

    assert isinstance(tenants.table.handlers[0].plan.connection_params[0][1], ParamSource)
    assert tenants.table.handlers[0].plan.connection_params[0][1].where == "query"
    app_router = WsRouter()
    app_router.include_router(tenants, prefix="/{tenant}")
    handler = app_router.table.handlers[0]
    assert handler.path == "/{tenant}/chat"
    assert handler.rank == 1  # it has a parameter now: ranked after static paths
    source = dict(handler.plan.connection_params)["tenant"]
    assert isinstance(source, ParamSource) and source.where == "path"
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
