"""Every misuse is refused when the handler is decorated (or the app built), with a message
that names the function, the parameter and the fix."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import pytest
from fastapi import Body, Depends, FastAPI, Path
from pydantic import BaseModel
from starlette.websockets import WebSocket

from wsroute import Broker, Channel, Data, RegistrationError, WebSocketStatus, WsRouter


class Msg(BaseModel):
    text: str


async def event_dep() -> AsyncIterator[int]:
    yield 1


def register(kind: str, fn: Callable[..., Any], path: str = "/x", **options: Any) -> None:
    ws = WsRouter()
    getattr(ws, kind)(path, **options)(fn)


async def join_with_message(data: str) -> None: ...
async def join_with_raw(message: Data) -> None: ...
async def two_messages(data: str, raw: Data) -> None: ...
async def unannotated(data, channel: Channel) -> None: ...  # type: ignore[no-untyped-def]
async def leave_with_data(data: str) -> None: ...
async def status_in_message(data: str, status: WebSocketStatus) -> None: ...
async def missing_path(data: str, room: Annotated[str, Path()]) -> None: ...
def not_async(data: str) -> None: ...
async def structured_query(data: str, extra: Msg) -> None: ...
async def raw_websocket(data: str, websocket: WebSocket) -> None: ...
async def body_marker(data: str, thing: Annotated[str, Body()]) -> None: ...
async def star_args(data: str, *args: str) -> None: ...
async def forward_ref(data: str, thing: NotDefinedAnywhere) -> None: ...  # type: ignore[name-defined]  # noqa: F821
async def scoped_wrong(data: str, x: Annotated[int, Depends(lambda: 1, scope="request")]) -> None: ...


async def needs_event(value: Annotated[int, Depends(event_dep)]) -> int:
    return value


async def connection_dep_needs_event(
    data: str, x: Annotated[int, Depends(needs_event, scope="request")]
) -> None: ...


async def data_name(text: str) -> None: ...


@pytest.mark.parametrize(
    ("kind", "fn", "options", "words"),
    [
        ("join", join_with_message, {}, ["join_with_message", "'data'", "a join handler has no message"]),
        ("join", join_with_raw, {}, ["join_with_raw", "'message'", "Fix:"]),
        ("message", two_messages, {}, ["two_messages", "two message parameters", "'raw'"]),
        ("message", unannotated, {}, ["unannotated", "'data'", "no type annotation", "Fix:"]),
        ("leave", leave_with_data, {}, ["leave_with_data", "WebSocketStatus"]),
        ("message", status_in_message, {}, ["status_in_message", "'status'", "leave"]),
        ("message", missing_path, {}, ["missing_path", "'room'", "not in the route's path", "{room}"]),
        ("message", not_async, {}, ["not_async", "async def"]),
        ("message", structured_query, {}, ["structured_query", "'extra'", "data="]),
        ("message", raw_websocket, {}, ["raw_websocket", "'websocket'", "Channel"]),
        ("message", body_marker, {}, ["body_marker", "'thing'", "Body()"]),
        ("message", star_args, {}, ["star_args", "'args'"]),
        ("message", forward_ref, {}, ["forward_ref", "NotDefinedAnywhere"]),
        ("message", data_name, {"data": "payload"}, ["data_name", "'payload'", "names no parameter"]),
        ("message", connection_dep_needs_event, {}, ["connection_dep_needs_event", "'x'", "scope='request'"]),
    ],
)
def test_registration_error(
    kind: str, fn: Callable[..., Any], options: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(RegistrationError) as info:
        register(kind, fn, **options)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_join_message_and_data_option_work_when_correct() -> None:
    register("message", data_name, data="text")
    register("message", scoped_wrong)  # a plain function dependency may be connection-scoped


def test_channel_in_an_http_route_is_refused_at_registration() -> None:
    app = FastAPI()
    with pytest.raises(RegistrationError, match="Channel can only be used in wsroute WebSocket handlers"):

        @app.get("/bad")
        async def bad(channel: Channel) -> None: ...


def test_bare_broker_in_an_http_route_points_to_app_broker() -> None:
    app = FastAPI()
    with pytest.raises(RegistrationError, match="AppBroker"):

        @app.get("/bad")
        async def bad(broker: Broker) -> None: ...


def test_install_twice_is_refused() -> None:
    app = FastAPI()
    WsRouter().install(app)
    with pytest.raises(RegistrationError, match="include_router"):
        WsRouter().install(app)


def test_path_must_start_with_slash() -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        WsRouter().message("echo")


@pytest.mark.parametrize("rate_limit", [(0, 1.0), (10, 0), (10, -1.0)])
def test_a_rate_limit_that_cannot_be_kept_is_refused_when_the_router_is_made(
    rate_limit: tuple[int, float],
) -> None:
    # Not at the first connection (a division by zero there closed every socket with 1011).
    with pytest.raises(ValueError, match="rate_limit"):
        WsRouter(rate_limit=rate_limit)
