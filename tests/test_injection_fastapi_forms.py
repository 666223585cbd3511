"""Parameters written as FastAPI users write them: each form gives the value (or the refusal)
FastAPI gives the same annotation. In process, over Starlette's TestClient: what is tested
is the injection, not the server."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import pytest
from annotated_types import Gt, MaxLen
from fastapi import Cookie, Depends, FastAPI, Header, HTTPException, Query
from fastapi.testclient import TestClient
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.exceptions import WebSocketException
from starlette.testclient import WebSocketDenialResponse

from wsroute import Channel, Guard, HandshakeRequest, RegistrationError, Reject, WsRouter
from wsroute.asyncapi import asyncapi_for_app
from wsroute.testing import multiplex_testclient


def app_of(ws: WsRouter) -> FastAPI:
    app = FastAPI()
    ws.install(app)
    return app


def reply(ws: WsRouter, url: str, headers: dict[str, str] | None = None) -> Any:
    """The handler's first answer to "go", or ``("denied", status, body)``."""
    try:
        with TestClient(app_of(ws)) as client, client.websocket_connect(url, headers=headers or {}) as socket:
            socket.send_text("go")
            return socket.receive_text()
    except WebSocketDenialResponse as denied:
        return ("denied", denied.status_code, denied.content.decode())


# --- checks inside a dependency that yields ---------------------------------------------------


async def current_user(x_user: Annotated[str | None, Header()] = None) -> str:
    if x_user is None:
        raise HTTPException(401, "who are you?")
    return x_user


async def session_of(user: Annotated[str, Depends(current_user)]) -> AsyncIterator[str]:
    yield f"session of {user}"  # per event: a database session, say


class Member(Guard):
    sync_to_thread = False

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> Member:
        if "x-user" not in request.headers:
            raise Reject(401, "who are you?")
        return cls()


async def db_of(member: Member) -> AsyncIterator[str]:
    yield "db"


def test_an_auth_check_taken_by_a_yield_dependency_refuses_at_the_handshake() -> None:
    """It ran at the first message only: a client without credentials was accepted, and
    read the room's broadcasts."""
    ws = WsRouter()

    @ws.message("/room")
    async def said(data: str, session: Annotated[str, Depends(session_of)], channel: Channel) -> None:
        await channel.broadcast(f"{session}: {data}")

    @ws.message("/room2")
    async def said2(data: str, db: Annotated[str, Depends(db_of)], channel: Channel) -> None:
        await channel.broadcast(f"{db}: {data}")

    for path in ("/room", "/room2"):
        assert reply(ws, path) == ("denied", 401, '{"detail":"who are you?"}')
    assert reply(ws, "/room", {"x-user": "ann"}) == "session of ann: go"
    assert reply(ws, "/room2", {"x-user": "ann"}) == "db: go"


# --- Query, Header and their Annotated neighbours ---------------------------------------------


def test_constraints_beside_a_marker_are_enforced() -> None:
    ws = WsRouter()

    @ws.message("/n")
    async def n(
        data: str,
        channel: Channel,
        n: Annotated[int, Gt(0), Query()],
        x_name: Annotated[str, Header(), MaxLen(3)] = "ann",
        tenfold: Annotated[int, Query(), AfterValidator(lambda v: v * 10)] = 0,
    ) -> None:
        await channel.send(f"{n} {x_name} {tenfold}")

    assert reply(ws, "/n?n=2&tenfold=2") == "2 ann 20"
    denied = reply(ws, "/n?n=-5")
    assert denied[:2] == ("denied", 422) and "greater_than" in denied[2]
    denied = reply(ws, "/n?n=1", {"x-name": "toolong"})
    assert denied[:2] == ("denied", 422) and "too_long" in denied[2]


def _odd(value: int) -> int:
    if value % 2 == 0:
        raise ValueError("must be odd")
    return value


# Module-level: FastAPI resolves the HTTP route's (string) annotations in this module.
N = Annotated[int, Gt(0), Query()]
Name = Annotated[str, Header(), MaxLen(3)]
Code = Annotated[str, Query(pattern="^[0-9]+$")]
Odd = Annotated[int, Query(), AfterValidator(_odd)]


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("", {}),  # n missing
        ("?n=abc", {}),  # not an int: `input` is what was sent
        ("?n=-5", {}),  # Gt(0): `ctx` has the bound
        ("?n=1&code=abc", {}),  # pattern: `ctx` has the pattern
        ("?n=1", {"x-name": "toolong"}),  # a header too long
        ("?n=1&odd=2", {}),  # a validator's ValueError: `ctx` has its message
    ],
)
def test_a_refused_parameter_has_the_body_fastapi_gives_the_same_declaration(
    query: str, headers: dict[str, str]
) -> None:
    ws = WsRouter()

    @ws.message("/n")
    async def on_ws(
        data: str, channel: Channel, n: N, x_name: Name = "ann", code: Code = "1", odd: Odd = 1
    ) -> None:
        await channel.send("accepted")

    app = app_of(ws)

    @app.get("/n")
    async def on_http(n: N, x_name: Name = "ann", code: Code = "1", odd: Odd = 1) -> str:
        return "accepted"

    with TestClient(app) as client:
        http = client.get(f"/n{query}", headers=headers)
        with (
            pytest.raises(WebSocketDenialResponse) as denied,
            client.websocket_connect(f"/n{query}", headers=headers),
        ):
            pass
    assert http.status_code == denied.value.status_code == 422
    expected = http.json()
    if query.endswith("odd=2"):
        # FastAPI's encoder turns the ValueError in `ctx` into `{}`; pydantic's JSON, which
        # wsroute sends, keeps its message.
        assert expected["detail"][0]["ctx"] == {"error": {}}
        expected["detail"][0]["ctx"] = {"error": "must be odd"}
    assert denied.value.json() == expected


def test_lists_factories_and_validation_aliases_read_as_fastapi_reads_them() -> None:
    ws = WsRouter()

    @ws.message("/p")
    async def p(
        data: str,
        channel: Channel,
        ids: Annotated[list[int], Query()],
        page: Annotated[int, Query(default_factory=lambda: 7)],
        tags: list[str] = Query([]),  # noqa: B008 - FastAPI's default-value form
        x_tag: Annotated[list[str] | None, Header()] = None,
        size: Annotated[int, Query(validation_alias="per-page")] = 10,
    ) -> None:
        await channel.send(f"{ids} {tags} {x_tag} {page} {size}")

    assert reply(ws, "/p?ids=1&ids=2&per-page=5", {"x-tag": "a"}) == "[1, 2] [] ['a'] 7 5"
    assert reply(ws, "/p?ids=3&tags=x&tags=y&page=2") == "[3] ['x', 'y'] None 2 10"


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(100, gt=0, le=100)
    order_by: Literal["created_at", "updated_at"] = "created_at"
    tags: list[str] = []
    q: str | None = None


class Aliased(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: str | None = Field(None, alias="search")


class Loose(BaseModel):
    need: int


class Heads(BaseModel):
    x_token: str
    accept_language: str | None = None


class Cookies(BaseModel):
    session_id: str


@pytest.mark.parametrize(
    ("path", "query", "headers", "cookies"),
    [
        ("/f", "?limit=5&tags=a&tags=b&q=zz", {}, {}),
        ("/f", "", {}, {}),
        ("/f", "?limit=0", {}, {}),
        ("/f", "?limit=x&bogus=1", {}, {}),  # extra="forbid": the unknown parameter too
        ("/l", "?need=3&other=1", {}, {}),  # extras ignored
        ("/l", "", {}, {}),
        ("/h", "", {"x-token": "t", "accept-language": "fr"}, {}),
        ("/c", "", {}, {"session_id": "s"}),
        ("/c", "", {}, {}),
    ],
)
def test_parameter_models_read_and_refuse_as_fastapi_does(
    path: str, query: str, headers: dict[str, str], cookies: dict[str, str]
) -> None:
    """``Annotated[Model, Query()]`` (and Header, Cookie): the handler gets the model FastAPI
    gives an HTTP route the same declaration, or the same 422."""
    ws = WsRouter()

    @ws.message("/f")
    async def f(data: str, channel: Channel, filters: Annotated[Filters, Query()]) -> None:
        await channel.send(filters.model_dump_json(by_alias=True))

    @ws.message("/l")
    async def ws_l(data: str, channel: Channel, loose: Annotated[Loose, Query()]) -> None:
        await channel.send(loose.model_dump_json(by_alias=True))

    @ws.message("/h")
    async def ws_h(data: str, channel: Channel, heads: Annotated[Heads, Header()]) -> None:
        await channel.send(heads.model_dump_json(by_alias=True))

    @ws.message("/c")
    async def ws_c(data: str, channel: Channel, cookies: Annotated[Cookies, Cookie()]) -> None:
        await channel.send(cookies.model_dump_json(by_alias=True))

    app = app_of(ws)

    @app.get("/f")
    async def http_f(filters: Annotated[Filters, Query()]) -> Filters:
        return filters

    @app.get("/l")
    async def http_l(loose: Annotated[Loose, Query()]) -> Loose:
        return loose

    @app.get("/c")
    async def http_c(cookies: Annotated[Cookies, Cookie()]) -> Cookies:
        return cookies

    with TestClient(app, cookies=cookies) as client:
        over_ws: Any
        try:
            with client.websocket_connect(f"{path}{query}", headers=headers) as socket:
                socket.send_text("go")
                over_ws = (200, json.loads(socket.receive_text()))
        except WebSocketDenialResponse as denied:
            over_ws = (denied.status_code, denied.json())
        if path == "/h":  # the HTTP client's own headers would differ: compare the model
            assert over_ws == (200, {"x_token": "t", "accept_language": "fr"})
            return
        http = client.get(f"{path}{query}", headers=headers)
    assert over_ws == (http.status_code, http.json())


def test_a_field_of_a_parameter_model_is_read_by_its_alias() -> None:
    # As FastAPI 0.165 does; 0.122 refused the alias as an extra parameter (its bug).
    ws = WsRouter()

    @ws.message("/a")
    async def a(data: str, channel: Channel, aliased: Annotated[Aliased, Query()]) -> None:
        await channel.send(repr(aliased.q))

    assert reply(ws, "/a?search=zz") == "'zz'"
    denied = reply(ws, "/a?q=zz")
    assert denied[:2] == ("denied", 422) and '"loc":["query","q"]' in denied[2]


def test_a_missing_header_of_a_model_is_named_as_the_request_names_it() -> None:
    ws = WsRouter()

    @ws.message("/h")
    async def h(data: str, heads: Annotated[Heads, Header()]) -> None: ...

    with (
        TestClient(app_of(ws)) as client,
        pytest.raises(WebSocketDenialResponse) as denied,
        client.websocket_connect("/h"),
    ):
        pass
    [error] = denied.value.json()["detail"]
    assert (error["type"], error["loc"]) == ("missing", ["header", "x-token"])


def test_parameter_forms_it_cannot_honour_fail_at_registration() -> None:
    ws = WsRouter()
    with pytest.raises(RegistrationError, match="which is a path parameter of the route"):
        # FastAPI refuses it too ("Cannot use `Query` for path param"); it was read from
        # the query string, so /r/a?room=b gave "b".
        @ws.message("/r/{room}")
        async def r(data: str, room: Annotated[str, Query()]) -> None: ...


# --- dependencies FastAPI accepts --------------------------------------------------------------


class Paging(BaseModel):
    limit: int = 10
    offset: int = 0


def prefixed(prefix: str, x_user: Annotated[str, Header()]) -> str:
    return prefix + x_user


def test_a_model_class_and_a_partial_are_dependencies() -> None:
    ws = WsRouter()

    @ws.message("/p")
    async def p(
        data: str,
        channel: Channel,
        paging: Annotated[Paging, Depends()],
        user: Annotated[str, Depends(functools.partial(prefixed, "u:"))],
    ) -> None:
        await channel.send(f"{paging.limit},{paging.offset} {user}")

    assert reply(ws, "/p?limit=3", {"x-user": "ann"}) == "3,0 u:ann"


async def the_data() -> str:
    return "from the dependency"


def test_a_dependency_named_data_is_a_dependency_not_the_message() -> None:
    ws = WsRouter()

    @ws.message("/m", data="payload")
    async def m(payload: str, data: Annotated[str, Depends(the_data)], channel: Channel) -> None:
        await channel.send(f"{payload} / {data}")

    @ws.join("/j")
    async def j(data: Annotated[str, Depends(the_data)], channel: Channel) -> None:
        await channel.send(data)

    @ws.message("/j")
    async def after(payload: str) -> None: ...

    assert reply(ws, "/m") == "go / from the dependency"
    with TestClient(app_of(ws)) as client, client.websocket_connect("/j") as socket:
        assert socket.receive_text() == "from the dependency"


# --- WebSocketException at the handshake --------------------------------------------------------


async def token_or_close(token: str | None = None) -> str:
    if token is None:
        raise WebSocketException(code=1008, reason="a token is needed")  # FastAPI's docs' pattern
    return token


def test_a_websocket_exception_at_the_handshake_refuses_with_403_not_500() -> None:
    ws = WsRouter()

    @ws.message("/t/{room}")
    async def t(data: str, token: Annotated[str, Depends(token_or_close)], channel: Channel) -> None:
        await channel.send(token)

    assert reply(ws, "/t/a") == ("denied", 403, '{"detail":"a token is needed"}')
    assert reply(ws, "/t/a?token=x") == "x"
    with TestClient(app_of(ws)) as client, multiplex_testclient(client, "/t/a?token=x") as mux:
        refusal = mux.subscribe("/t/b")
        assert refusal.reason == "403 Forbidden", refusal  # type: ignore[union-attr]


def test_a_parameter_models_fields_are_documented_one_by_one() -> None:
    ws = WsRouter()

    @ws.message("/items")
    async def items(
        data: str, filters: Annotated[Filters, Query()], heads: Annotated[Heads, Header()]
    ) -> None: ...

    binding = asyncapi_for_app(app_of(ws))["channels"]["items"]["bindings"]["ws"]
    assert list(binding["query"]["properties"]) == ["limit", "order_by", "tags", "q"]
    assert binding["query"]["properties"]["limit"] == {
        "default": 100,
        "type": "integer",
        "maximum": 100,
        "exclusiveMinimum": 0,
    }
    assert "required" not in binding["query"]
    assert list(binding["headers"]["properties"]) == ["x-token", "accept-language"]
    assert binding["headers"]["required"] == ["x-token"]
