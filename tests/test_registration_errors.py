"""Every misuse is refused when the handler is decorated (or the app built), with a message
that names the function, the parameter and the fix."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Annotated, Any, cast

import pytest
from fastapi import Body, Depends, FastAPI, Path
from pydantic import BaseModel
from starlette.websockets import WebSocket

from wsroute import (
    Broker,
    Channel,
    Data,
    Guard,
    HandshakeRequest,
    RegistrationError,
    SecurityScheme,
    WebSocketStatus,
    WsRouter,
)
from wsroute.injection import Context, analyze


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
async def leave_with_model(data: Msg) -> None: ...
async def leave_with_optional_model(data: Msg | None) -> None: ...


class PlainMethod:
    def from_request(self, request: HandshakeRequest) -> PlainMethod:
        return self


class AsyncPlainMethod:
    async def from_request(self, request: HandshakeRequest) -> AsyncPlainMethod:
        return self


class NoRequest:
    @classmethod
    def from_request(cls) -> NoRequest:
        return cls()


class TwoRequired:
    @classmethod
    def from_request(cls, request: HandshakeRequest, db: str) -> TwoRequired:
        return cls()


class KeywordOnly:
    @classmethod
    def from_request(cls, *, request: HandshakeRequest) -> KeywordOnly:
        return cls()


class StaticWithCls:
    @staticmethod
    def from_request(cls: type, request: HandshakeRequest) -> StaticWithCls:
        return StaticWithCls()


class AsyncGenerator:
    @classmethod
    async def from_request(cls, request: HandshakeRequest) -> AsyncIterator[AsyncGenerator]:
        yield cls()


class SyncGenerator:
    @classmethod
    def from_request(cls, request: HandshakeRequest) -> Iterator[SyncGenerator]:
        yield cls()


class NoFromRequest(Guard):
    pass


class SecurityOnly:
    security = SecurityScheme.api_key("token", "query")


class Staff(Guard):
    @classmethod
    async def from_request(cls, request: HandshakeRequest) -> Staff:
        return cls()


class Visitor(Guard):
    @classmethod
    async def from_request(cls, request: HandshakeRequest) -> Visitor:
        return cls()


async def plain_method(data: str, user: PlainMethod) -> None: ...
async def async_plain_method(data: str, user: AsyncPlainMethod) -> None: ...
async def joined_plain_method(user: PlainMethod) -> None: ...
async def left_plain_method(status: WebSocketStatus, user: PlainMethod) -> None: ...
async def no_request(data: str, user: NoRequest) -> None: ...
async def two_required(data: str, user: TwoRequired) -> None: ...
async def keyword_only(data: str, user: KeywordOnly) -> None: ...
async def static_with_cls(data: str, user: StaticWithCls) -> None: ...
async def async_generator(data: str, user: AsyncGenerator) -> None: ...
async def sync_generator(data: str, user: SyncGenerator) -> None: ...
async def no_from_request(data: str, user: NoFromRequest) -> None: ...
async def bare_guard_base(data: str, user: Guard) -> None: ...
async def security_only(data: str, user: SecurityOnly) -> None: ...
async def guard_union(data: str, user: Staff | Visitor) -> None: ...
async def guard_or_str(data: str, user: Staff | str | None) -> None: ...


def uses_plain_method(user: PlainMethod) -> str:
    return "x"


async def guard_in_dependency(data: str, name: Annotated[str, Depends(uses_plain_method)]) -> None: ...


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
        (
            "leave",
            leave_with_model,
            {},
            [
                "leave_with_model",
                "'data'",
                "receives the close status, not a message",
                "`data: WebSocketStatus`",
            ],
        ),
        (
            "leave",
            leave_with_optional_model,
            {},
            ["leave_with_optional_model", "'data'", "close status", "`data: WebSocketStatus`"],
        ),
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


@pytest.mark.parametrize(
    ("kind", "fn", "words"),
    [
        (
            "message",
            plain_method,
            ["plain_method", "'user'", "PlainMethod.from_request", "plain method", "@classmethod"],
        ),
        ("message", async_plain_method, ["async_plain_method", "'user'", "plain method", "@classmethod"]),
        ("join", joined_plain_method, ["joined_plain_method", "'user'", "plain method", "@classmethod"]),
        ("leave", left_plain_method, ["left_plain_method", "'user'", "plain method", "@classmethod"]),
        ("message", no_request, ["no_request", "'user'", "NoRequest.from_request(cls)", "(request)"]),
        ("message", two_required, ["two_required", "'user'", "(cls, request, db)", "default"]),
        ("message", keyword_only, ["keyword_only", "'user'", "(cls, *, request)", "(request)"]),
        ("message", static_with_cls, ["static_with_cls", "'user'", "staticmethod", "@classmethod"]),
        ("message", async_generator, ["async_generator", "'user'", "async generator", "never run", "return"]),
        ("message", sync_generator, ["sync_generator", "'user'", "generator", "never run", "return"]),
        (
            "message",
            no_from_request,
            [
                "no_from_request",
                "'user'",
                "NoFromRequest subclasses wsroute.Guard",
                "no from_request",
                "@classmethod",
            ],
        ),
        ("message", bare_guard_base, ["bare_guard_base", "'user'", "Guard", "no from_request", "subclass"]),
        (
            "message",
            security_only,
            [
                "security_only",
                "'user'",
                "SecurityOnly declares a security scheme",
                "no from_request",
                "@classmethod",
            ],
        ),
        ("message", guard_in_dependency, ["guard_in_dependency", "'user'", "plain method", "@classmethod"]),
        # `Staff | None` is an optional guard (docs/guards.md); a union with anything else is not.
        ("message", guard_union, ["guard_union", "'user'", "a union of a guard", "its own parameter"]),
        ("message", guard_or_str, ["guard_or_str", "'user'", "a union of a guard", "its own parameter"]),
    ],
)
def test_a_guard_that_cannot_be_built_is_refused_at_registration(
    kind: str, fn: Callable[..., Any], words: list[str]
) -> None:
    # Not at every handshake, where it was a 500 (a TypeError or NotImplementedError) or,
    # for a generator, a guard that never ran its checks.
    with pytest.raises(RegistrationError) as info:
        register(kind, fn)
    message = str(info.value)
    _, _, rest = message.partition(": parameter 'user': ")
    assert rest, message
    assert ". Fix: " in rest, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


class WithDefaults:
    def __init__(self, how: str) -> None:
        self.how = how

    @classmethod
    async def from_request(
        cls, request: HandshakeRequest, how: str = "classmethod", *, strict: bool = True
    ) -> Any:
        return cls(how)


class Static:
    def __init__(self, how: str) -> None:
        self.how = how

    @staticmethod
    def from_request(request: HandshakeRequest) -> Static:
        return Static("staticmethod")


class ReturnsCoroutine(Guard):
    def __init__(self, how: str) -> None:
        self.how = how

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> Awaitable[ReturnsCoroutine]:
        async def build() -> ReturnsCoroutine:
            return cls("sync returning a coroutine")

        return build()


class StarArgs:
    def __init__(self, how: str) -> None:
        self.how = how

    @classmethod
    def from_request(cls, *args: HandshakeRequest) -> StarArgs:
        return cls("*args")


class Color(enum.Enum):
    red = "red"


@dataclasses.dataclass
class Point:
    x: int


async def valid_guards(
    data: Point,
    a: WithDefaults,
    b: Static,
    c: ReturnsCoroutine,
    d: StarArgs,
    color: Color = Color.red,
) -> None: ...


async def test_valid_guards_register_and_build() -> None:
    # Plain classes without from_request stay what they were: the message, a query parameter.
    plan = analyze(valid_guards, "message", set())
    assert plan.message_param == "data"
    scope = {"type": "websocket", "path": "/x", "query_string": b"", "headers": []}
    ctx = Context(HandshakeRequest(scope), cast(Any, None), cast(Any, None))
    values = await plan.connection_values(ctx)
    assert {name: getattr(value, "how", value) for name, value in values.items()} == {
        "a": "classmethod",
        "b": "staticmethod",
        "c": "sync returning a coroutine",
        "d": "*args",
        "color": Color.red,
    }


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
