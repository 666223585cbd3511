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
