"""The AsyncAPI 3.0 document, its routes, its page in real Chromium, and the command line.

Every generated document is validated against the official AsyncAPI 3.0.0 JSON Schema
(``tests/asyncapi/3.0.0.json``, vendored from the npm package ``@asyncapi/specs``), and
against 3.1.0's as a 3.1.0 document (``3.1.0.json``), and by a walker for what JSON Schema
cannot see: every ``$ref`` resolves, every operation's channel exists and its messages
belong to that channel, every address parameter is declared. ``test_asyncapi_tools.py``
runs the official parser and Modelina on them.

Chromium is Debian's (``/usr/bin/chromium``) driven by the ``playwright`` package; never run
``playwright install``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest
from fastapi import Depends, FastAPI, Query, Security
from fastapi.responses import PlainTextResponse
from fastapi.security import OAuth2PasswordBearer, SecurityScopes
from pydantic import BaseModel, Field, StringConstraints
from starlette.applications import Starlette

from apps import asyncapi_rich, asyncapi_tagged
from support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_chromium
from wsroute import Channel, Data, Guard, HandshakeRequest, WsRouter
from wsroute.asyncapi import UNPKG, SecurityScheme, asyncapi_document, asyncapi_for_app, asyncapi_warnings
from wsroute.testing import ServerThread, serve

ROOT = Path(__file__).parent.parent
SCHEMA = Path(__file__).parent / "asyncapi" / "3.0.0.json"
SCHEMA_3_1 = Path(__file__).parent / "asyncapi" / "3.1.0.json"
COMPONENT_KEY = re.compile(r"^[\w\d.\-_]+$")
RICH_ADDRESSES = [
    "/echo",
    "/rooms/{room}",
    "/files/{_0}/{_1}",
    "/raw/{kind}",
    "/either",
    "/admin/{user_id}",
    "/{_0}",
]


# --- validation --------------------------------------------------------------------------


@functools.cache
def official_validator(path: Path) -> jsonschema.protocols.Validator:
    schema = json.loads(path.read_text())
    cls = jsonschema.validators.validator_for(schema)
    assert cls is jsonschema.Draft7Validator  # what the schema declares
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    return official_validator(SCHEMA)


def _pointer(document: Any, ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref!r} is not a local reference"
    node = document
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref!r} does not resolve (at {part!r})"
        node = node[part]
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def walk(document: dict[str, Any]) -> None:
    """What JSON Schema cannot check: references, and operations against their channels."""
    for ref in _refs(document):
        _pointer(document, ref)
    channels = document.get("channels", {})
    for channel_id, channel in channels.items():
        in_address = set(re.findall(r"\{([^}]+)\}", channel.get("address") or ""))
        assert in_address == set(channel.get("parameters", {})), f"{channel_id}: address vs parameters"
        for key, message in channel.get("messages", {}).items():
            assert message.get("name", key) == key
    for components in ("schemas", "securitySchemes"):
        for key in document.get("components", {}).get(components, {}):
            assert COMPONENT_KEY.match(key), f"components.{components} key {key!r}"
    for op_id, operation in document.get("operations", {}).items():
        channel_ref = operation["channel"]["$ref"]
        assert re.fullmatch(r"#/channels/[^/]+", channel_ref), f"{op_id}: channel {channel_ref!r}"
        channel_id = channel_ref.rsplit("/", 1)[1]
        assert channel_id in channels, f"{op_id}: no channel {channel_id!r}"
        assert operation["messages"], f"{op_id} has no messages"
        for message in operation["messages"]:
            prefix = f"#/channels/{channel_id}/messages/"
            assert message["$ref"].startswith(prefix), f"{op_id}: {message['$ref']} is not on {channel_id}"
            assert message["$ref"][len(prefix) :] in channels[channel_id]["messages"]
        for requirement in operation.get("security", []):
            assert requirement["$ref"].startswith("#/components/securitySchemes/")


def check(document: dict[str, Any], validator: jsonschema.protocols.Validator) -> None:
    """Valid AsyncAPI 3.0.0 (and 3.1.0, declared so), JSON as served, and every reference
    where it belongs."""
    document = json.loads(json.dumps(document))
    assert document["asyncapi"] == "3.0.0"
    for version, schema in (("3.0.0", validator), ("3.1.0", official_validator(SCHEMA_3_1))):
        errors = sorted(
            schema.iter_errors({**document, "asyncapi": version}), key=lambda e: list(e.absolute_path)
        )
        best = jsonschema.exceptions.best_match(errors)
        assert not errors, f"{len(errors)} errors as {version}; best match: {best}"
    walk(document)


# --- apps --------------------------------------------------------------------------------


def echo_app(**install: Any) -> FastAPI:
    ws = WsRouter()

    @ws.message("/echo")
    async def echo(data: str, channel: Channel) -> None:
        await channel.send(data)

    app = FastAPI(title="Echo", version="1.2.3")
    ws.install(app, **install)
    return app


@pytest.fixture(scope="module")
def rich() -> dict[str, Any]:
    return asyncapi_for_app(asyncapi_rich.app, host="127.0.0.1:8000")


# --- the document ------------------------------------------------------------------------


def test_rich_document_is_valid(rich: dict[str, Any], validator: jsonschema.protocols.Validator) -> None:
    check(rich, validator)
    assert [c["address"] for c in rich["channels"].values()] == RICH_ADDRESSES


def test_echo_document_is_valid(validator: jsonschema.protocols.Validator) -> None:
    document = asyncapi_for_app(echo_app(), host="example.com")
    check(document, validator)
    assert document["info"] == {"title": "Echo", "version": "1.2.3"}
    assert document["servers"]["default"]["host"] == "example.com"
    assert document["servers"]["default"]["protocol"] == "ws"
    assert list(document["channels"]) == ["echo"]
    (operation,) = document["operations"].values()
    assert operation["action"] == "receive"
    assert document["channels"]["echo"]["messages"]["echo"]["payload"] == {"type": "string"}
    assert "components" not in document


def test_the_walker_catches_what_json_schema_cannot(
    rich: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    broken = json.loads(json.dumps(rich))
    broken["operations"]["rooms_room.receive"]["messages"] = [{"$ref": "#/channels/echo/messages/echo"}]
    assert not list(validator.iter_errors(broken))
    with pytest.raises(AssertionError, match="is not on rooms_room"):
        walk(broken)
    dangling = json.loads(json.dumps(rich))
    dangling["channels"]["rooms_room"]["messages"]["said"]["payload"] = {"$ref": "#/components/schemas/Nope"}
    with pytest.raises(AssertionError, match="does not resolve"):
        walk(dangling)


def test_channels_parameters_and_bindings(rich: dict[str, Any]) -> None:
    rooms = rich["channels"]["rooms_room"]
    assert "The room's name." in rooms["parameters"]["room"]["description"]
    assert rooms["parameters"]["room"]["description"] == (
        "`room`: one path segment (no `/`), at most 40 characters. The room's name."
    )
    binding = rooms["bindings"]["ws"]
    assert binding["method"] == "GET" and binding["bindingVersion"] == "0.1.0"
    assert binding["query"]["properties"]["limit"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 10,
    }
    assert "x-client" in binding["headers"]["properties"]
    # join, message and leave share the channel: the description lists all three.
    for line in ("**join** `joined`", "**message** `said`", "**leave** `left`"):
        assert line in rooms["description"]
    files = rich["channels"]["files__0__1"]
    assert set(files["parameters"]) == {"_0", "_1"}
    assert "Anonymous" in files["parameters"]["_0"]["description"]
    assert rich["channels"]["raw_kind"]["parameters"]["kind"]["enum"] == ["said", "emote"]
    assert "an integer" in rich["channels"]["admin_user_id"]["parameters"]["user_id"]["description"]
    # A dependency's own query parameter is part of the handshake too.
    either = rich["channels"]["either"]["bindings"]["ws"]["query"]["properties"]
    assert either["tenant"]["pattern"] == "^[a-z]+$" and either["tags"]["type"] == "array"


def test_messages_in_and_out(rich: dict[str, Any]) -> None:
    ops = rich["operations"]
    schemas = rich["components"]["schemas"]

    def payloads(op_id: str) -> dict[str, Any]:
        return {ref["$ref"].rsplit("/", 1)[1]: _pointer(rich, ref["$ref"]) for ref in ops[op_id]["messages"]}

    # One receive and at most one send operation per channel.
    assert sorted(ops) == sorted(
        f"{channel}.{action}"
        for channel in ("echo", "rooms_room", "files__0__1", "raw_kind", "either", "admin_user_id")
        for action in ("receive", "send")
    )
    said = payloads("rooms_room.receive")["said"]
    assert said["payload"] == {"$ref": "#/components/schemas/ChatIn"}
    assert said["contentType"] == "application/json"
    # Nested models and enums are hoisted into components, not left in $defs.
    assert schemas["ChatIn"]["properties"]["attachments"]["items"] == {
        "$ref": "#/components/schemas/Attachment"
    }
    assert "Kind" in schemas and "$defs" not in json.dumps(rich)
    receive = ops["rooms_room.receive"]
    assert receive["action"] == "receive"
    assert receive["summary"] == "Broadcast what a client says to the room."
    assert receive["x-wsroute-max-message-size"] == 1024 * 1024
    # join (sends= and Channel[ChatOut]), message (Channel[ChatOut]) and leave (Channel[Left]):
    # one send operation, the union of their messages, saying which handler sends which.
    send = ops["rooms_room.send"]
    assert send["action"] == "send"
    assert list(payloads("rooms_room.send")) == ["Joined", "ChatOut", "Left"]
    assert send["summary"] == "What the server sends on /rooms/{room}: Joined, ChatOut or Left."
    assert send["description"] == (
        "Which handler sends which message:\n\n"
        "- **join** `joined` (on connect): `Joined`, `ChatOut`\n"
        "- **message** `said` (on each message): `ChatOut`\n"
        "- **leave** `left` (on disconnect): `Left`"
    )
    assert payloads("echo.receive")["echo"]["contentType"] == "text/plain"
    assert payloads("files__0__1.receive")["upload"]["payload"] == {"type": "string", "format": "binary"}
    raw = payloads("raw_kind.receive")
    assert {m["contentType"] for m in raw.values()} == {"text/plain", "application/octet-stream"}
    ping = payloads("raw_kind.send")["Ping"]
    assert ping["contentType"] == "text/plain" and "Ping.into_message()" in ping["description"]
    assert len(payloads("either.receive")) == 2  # str | bytes: a text and a binary message
    assert set(payloads("either.send")) == {"ChatOut", "Joined"}  # Channel[ChatOut | Joined]
    admin = payloads("admin_user_id.send")["dict_str_int"]
    assert admin["payload"]["additionalProperties"] == {"type": "integer"}
    assert ops["echo.receive"]["description"] == "The reply is the message, unchanged."


def test_security_schemes(rich: dict[str, Any]) -> None:
    schemes = rich["components"]["securitySchemes"]
    assert schemes["User"] == {
        "type": "httpApiKey",
        "name": "token",
        "in": "query",
        "description": "A session token.",
    }
    assert schemes["AdminToken"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert schemes["APIKeyHeader"] == {"type": "httpApiKey", "name": "X-API-Key", "in": "header"}
    assert schemes["APIKeyCookie"]["in"] == "cookie"  # nested in a dependency
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    # AsyncAPI wants absolute OAuth2 URLs: the relative tokenUrl is resolved against the app.
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "http://127.0.0.1:8000/token"

    def names(op_id: str) -> set[str]:
        return {ref["$ref"].rsplit("/", 1)[1] for ref in rich["operations"][op_id].get("security", [])}

    assert names("rooms_room.receive") == {"User"}
    assert names("rooms_room.send") == {"User"}
    assert names("raw_kind.receive") == {"APIKeyHeader"}
    assert names("admin_user_id.receive") == {"AdminToken"}  # the Anyone guard describes no security
    assert names("files__0__1.receive") == {"HTTPBearer", "OAuth2PasswordBearer"}
    files = rich["operations"]["files__0__1.receive"]
    assert "Requires all of these security schemes" in files["description"]
    assert names("echo.receive") == set()


def test_multiplex_extension_and_limits(rich: dict[str, Any]) -> None:
    server = rich["servers"]["default"]
    multiplex = server["x-wsroute-multiplex"]
    assert multiplex["subprotocol"] == "rocket-multiplex"
    assert multiplex["separator"] == "\u00b7"
    assert multiplex["limits"] == {"topicsPerSocket": 64, "topicBytes": 100, "controlBytes": 512}
    assert set(multiplex["clientActions"]) == {"SUBSCRIBE", "UNSUBSCRIBE"}
    assert set(multiplex["serverReplies"]) == {"OK", "ERR", "INVALID", "UNSUBSCRIBE"}
    assert "Too Many Topics" in multiplex["errReasons"]
    assert multiplex["client"] == "/wsroute/multiplex.js"
    assert server["x-wsroute-limits"]["maxMessageSize"] == 1024 * 1024
    assert "x-wsroute-multiplex" not in asyncapi_document(WsRouter(multiplex=False))["servers"]["default"]


def test_edge_cases_stay_valid(validator: jsonschema.protocols.Validator) -> None:
    def make(n: int) -> type[BaseModel]:
        class Item(BaseModel):
            value: int = n

        Item.__qualname__ = f"make{n}.Item"
        return Item

    first, second = make(1), make(2)

    class Opaque:
        """Not a pydantic type, no into_message."""

    class Token(Guard):
        security = SecurityScheme.http("basic", description="Basic auth")

        @classmethod
        def from_request(cls, request: HandshakeRequest) -> Token:
            return cls()

    class Other(Guard):
        security = SecurityScheme.api_key("k", "header", name="Token")  # same key, other scheme

        @classmethod
        def from_request(cls, request: HandshakeRequest) -> Other:
            return cls()

    ws = WsRouter(prefix="/v1", title="Edge", version="0")

    @ws.message("/x/{_0}/{_}", name="weird name!", sends=[first, second, Opaque])
    async def weird(data: Data, token: Token, other: Other, n: Annotated[int, Query()] = 1) -> None:
        """Summary line
        continued.

        Body."""

    @ws.message("/x/{_0}/{_}")
    async def twin(data: first) -> None:  # type: ignore[valid-type]
        pass

    @ws.message("/")
    async def root(channel: Channel) -> None:  # no message parameter: any frame
        pass

    document = asyncapi_document(ws, host="h", protocol="wss", pathname="/base/")
    check(document, validator)
    assert document["servers"]["default"]["pathname"] == "/base"
    assert document["servers"]["default"]["protocol"] == "wss"
    channel = document["channels"]["v1_x__0__1"]
    assert channel["address"] == "/v1/x/{_0}/{_1}"
    sent = [_pointer(document, ref["$ref"]) for ref in document["operations"]["v1_x__0__1.send"]["messages"]]
    assert len({m["payload"]["$ref"] for m in sent[:2]}) == 2  # two models named Item, two schemas
    assert "no JSON Schema" in sent[2]["payload"]["description"]
    # Two message handlers on one path: one receive operation, a message for each.
    operation = document["operations"]["v1_x__0__1.receive"]
    assert [ref["$ref"].rsplit("/", 1)[1] for ref in operation["messages"]] == [
        "weird_name__text",
        "weird_name__binary",
        "twin",
    ]
    assert operation["summary"] == (
        "Messages for weird name! or twin: the first handler that accepts the connection takes them."
    )
    line = "- `weird name!` takes `Data` (requires all of `Token`, `Token_2`): Summary line continued."
    assert line in operation["description"]
    assert "- `twin` takes `Item` (requires no security scheme)" in operation["description"]
    assert {"Token", "Token_2"} <= set(document["components"]["securitySchemes"])
    assert document["channels"]["v1"]["address"] == "/v1"
    assert len(document["operations"]["v1.receive"]["messages"]) == 2  # text or binary
    custom = asyncapi_document(ws, servers={"prod": {"host": "example.com", "protocol": "wss"}})
    check(custom, validator)
    assert custom["servers"]["prod"]["host"] == "example.com"


class Circle(BaseModel):
    type: Literal["circle"]
    radius: float = Field(gt=0)


class Square(BaseModel):
    type: Literal["square"]
    side: float


Shape = Annotated[Circle | Square, Field(discriminator="type")]


class Drawing(BaseModel):
    shapes: list[Shape]


def test_message_constraints_and_discriminators(validator: jsonschema.protocols.Validator) -> None:
    """A message's schema is its whole annotation's: Annotated constraints, discriminators."""
    ws = WsRouter()

    @ws.message("/count")
    async def count(data: Annotated[int, Field(ge=0, le=9)]) -> None:
        pass

    @ws.message("/batch")
    async def batch(data: Annotated[list[Annotated[int, Field(gt=0)]], Field(max_length=2)]) -> None:
        pass

    @ws.message("/shape")
    async def shape(data: Shape, channel: Channel[Drawing]) -> None:
        pass

    @ws.message("/name")
    async def name(data: Annotated[str, StringConstraints(min_length=1, max_length=3)]) -> None:
        pass

    @ws.message("/blob")
    async def blob(data: Annotated[bytes, Field(max_length=4)]) -> None:
        pass

    document = asyncapi_document(ws)
    check(document, validator)

    def message(channel: str) -> dict[str, Any]:
        (ref,) = document["operations"][f"{channel}.receive"]["messages"]
        return dict(_pointer(document, ref["$ref"]))

    counted = message("count")
    assert counted["title"] == "int" and counted["contentType"] == "application/json"
    assert counted["payload"] == {"type": "integer", "minimum": 0, "maximum": 9}
    assert message("batch")["payload"] == {
        "type": "array",
        "items": {"type": "integer", "exclusiveMinimum": 0},
        "maxItems": 2,
    }
    shaped = message("shape")
    assert shaped["title"] == "Circle | Square"
    # AsyncAPI's discriminator is the property's name (OpenAPI's object form is invalid there).
    assert shaped["payload"] == {
        "oneOf": [{"$ref": "#/components/schemas/Circle"}, {"$ref": "#/components/schemas/Square"}],
        "discriminator": "type",
    }
    schemas = document["components"]["schemas"]
    assert schemas["Circle"]["properties"]["radius"]["exclusiveMinimum"] == 0
    # A discriminated union inside a model (here, one the handler sends) is converted too.
    assert schemas["Drawing"]["properties"]["shapes"]["items"]["discriminator"] == "type"
    named = message("name")
    assert named["contentType"] == "text/plain"
    assert named["payload"] == {"type": "string", "minLength": 1, "maxLength": 3}
    blobbed = message("blob")
    assert blobbed["contentType"] == "application/octet-stream"
    assert blobbed["payload"]["format"] == "binary" and blobbed["payload"]["maxLength"] == 4


def test_tags_are_required_and_tagged_unions_discriminated(validator: jsonschema.protocols.Validator) -> None:
    """``type: Literal["said"] = "said"`` is required, and a union of models tagged on one
    field, with or without pydantic's discriminator, is a oneOf with AsyncAPI's."""
    document = asyncapi_for_app(asyncapi_tagged.app)
    check(document, validator)
    schemas = document["components"]["schemas"]
    tags = {"Said": "type", "Joined": "type", "Left": "type", "Square": "kind", "Ping": "type"}
    for model, tag in tags.items():
        assert tag in schemas[model]["required"], model
    assert schemas["Said"]["properties"]["type"] == {
        "const": "said",
        "default": "said",
        "title": "Said Type",  # each model's tag titled apart: see test_asyncapi_tools.py
        "type": "string",
    }
    assert "code" not in schemas["Left"]["required"]  # an ordinary default stays optional
    history = schemas["History"]["properties"]
    refs = [{"$ref": f"#/components/schemas/{name}"} for name in ("Said", "Joined", "Left")]
    assert history["events"]["items"] == {"oneOf": refs, "discriminator": "type"}  # no pydantic discriminator
    assert history["shapes"]["items"]["discriminator"] == "kind"  # pydantic's, as a name
    assert "discriminator" not in history["mixed"]["items"]  # Note has no tag
    assert "discriminator" not in history["clash"]["items"]  # Said and Echo share theirs
    received = _pointer(document, document["operations"]["ping.receive"]["messages"][0]["$ref"])
    assert received["payload"] == {"oneOf": refs, "discriminator": "type"}  # a message too
    # Channel[Never]: the handler sends nothing, so there is no send operation.
    assert "quiet.send" not in document["operations"]


def test_summaries_are_plain_text_and_descriptions_markdown(
    validator: jsonschema.protocols.Validator,
) -> None:
    """AsyncAPI renders a description as CommonMark but shows a summary as it is."""
    ws = WsRouter()

    @ws.message("/say")
    async def say(data: str, channel: Channel[str]) -> None:
        """Send a `Say`, see [the guide](https://example.com) — **now**.

        The reply is a ``str``.
        """

    @ws.message("/plain", summary="Given `summary=`")
    async def plain(data: str) -> None:
        """Docstring `body`."""

    document = asyncapi_document(ws)
    check(document, validator)
    receive = document["operations"]["say.receive"]
    assert receive["summary"] == "Send a Say, see the guide — now."
    assert receive["description"] == "The reply is a ``str``."
    assert "`Say`" in document["channels"]["say"]["description"]  # Markdown where it renders
    assert "`" not in document["operations"]["say.send"]["summary"]
    plain_op = document["operations"]["plain.receive"]
    assert plain_op["summary"] == "Given summary=" and plain_op["description"] == "Docstring `body`."


def test_several_message_handlers_state_their_own_limits(validator: jsonschema.protocols.Validator) -> None:
    ws = WsRouter()

    @ws.message("/x", max_message_size=10, rate_limit=(1, 1.0))
    async def small(data: str) -> None:
        """Small messages."""

    @ws.message("/x")
    async def large(data: bytes) -> None:
        """Large ones."""

    @ws.message("/y", max_message_size=10)
    async def first(data: str) -> None:
        """First."""

    @ws.message("/y", max_message_size=10)
    async def second(data: bytes) -> None:
        """Second."""

    document = asyncapi_document(ws)
    check(document, validator)
    operation = document["operations"]["x.receive"]
    assert "x-wsroute-max-message-size" not in operation  # they differ: each message says its own
    messages = document["channels"]["x"]["messages"]
    assert messages["small"]["x-wsroute-max-message-size"] == 10
    assert messages["small"]["x-wsroute-rate-limit"] == {"messages": 1, "seconds": 1.0}
    assert messages["large"]["x-wsroute-max-message-size"] == 1024 * 1024
    assert "x-wsroute-rate-limit" not in messages["large"]
    shared = document["operations"]["y.receive"]
    assert shared["x-wsroute-max-message-size"] == 10  # the same for both: the operation's
    assert "x-wsroute-max-message-size" not in document["channels"]["y"]["messages"]["first"]


def test_the_intro_comes_from_the_router_or_fastapis_summary() -> None:
    """FastAPI's description is written for ``/docs`` and may point to ``/asyncapi``."""

    def app(**fastapi: Any) -> FastAPI:
        ws = WsRouter(**fastapi.pop("router", {}))

        @ws.message("/x")
        async def x(data: str) -> None:
            """X."""

        made = FastAPI(**fastapi)
        ws.install(made)
        return made

    see = "HTTP routes. The WebSocket API is at `/asyncapi`."
    both = asyncapi_for_app(app(summary="A chat.", description=see))
    assert both["info"]["description"] == "A chat."
    assert asyncapi_for_app(app(description=see))["info"]["description"] == see
    mine = asyncapi_for_app(app(summary="A chat.", router={"description": "Rooms."}))
    assert mine["info"]["description"] == "Rooms."


def test_the_chat_examples_document_reads_right() -> None:
    """What the page of the chat example shows: no pointer to itself, a room parameter whose
    words agree with its pattern, one send operation for the handlers that send."""
    from examples.chat.app import app

    document = asyncapi_for_app(app)
    assert "/asyncapi" not in document["info"].get("description", "")
    room = document["channels"]["rooms_room"]["parameters"]["room"]["description"]
    assert room.startswith("`room`: one path segment (no `/`), matching the pattern `^[a-z0-9]")
    assert "any text" not in room
    send = document["operations"]["rooms_room.send"]
    for handler in ("**join** `enter`", "**message** `say`"):
        assert handler in send["description"]
    # The leave handler sends nothing (presence tells the room), so it is not among the senders.
    assert "**leave**" not in send["description"]


def test_security_scopes_a_route_requires(validator: jsonschema.protocols.Validator) -> None:
    """OAuth2 schemes list their scopes; each operation's requirement names those it needs."""
    oauth2 = OAuth2PasswordBearer(
        tokenUrl="/token", scopes={"items:read": "Read items.", "items:write": "Change items."}
    )

    def current_user(security_scopes: SecurityScopes, token: Annotated[str, Depends(oauth2)]) -> str:
        return token

    def writer(user: Annotated[str, Security(current_user, scopes=["items:write"])]) -> str:
        return user

    ws = WsRouter()

    @ws.message("/read")
    async def read(data: str, user: Annotated[str, Security(current_user, scopes=["items:read"])]) -> None:
        pass

    @ws.message("/write")
    async def write(data: str, user: Annotated[str, Security(writer, scopes=["items:read"])]) -> None:
        pass

    @ws.message("/both")  # the same scheme under two Security: one requirement, both scopes
    async def both(
        data: str,
        reader: Annotated[str, Security(current_user, scopes=["items:read"])],
        changer: Annotated[str, Security(current_user, scopes=["items:write", "items:read"])],
    ) -> None:
        pass

    @ws.join("/gated")
    async def gated(user: Annotated[str, Security(current_user, scopes=["items:read"])]) -> None:
        pass

    @ws.message("/gated")  # the join handler's requirement applies to the route's messages
    async def gated_message(data: str) -> None:
        pass

    @ws.message("/token")
    async def token_only(data: str, user: Annotated[str, Depends(current_user)]) -> None:
        pass

    document = asyncapi_document(ws, host="api.example.com")
    check(document, validator)
    schemes = document["components"]["securitySchemes"]

    def required(channel: str) -> dict[str, Any]:
        (ref,) = document["operations"][f"{channel}.receive"]["security"]
        return dict(_pointer(document, ref["$ref"]))

    for channel, scopes in (
        ("read", ["items:read"]),
        ("write", ["items:read", "items:write"]),
        ("both", ["items:read", "items:write"]),
        ("gated", ["items:read"]),
    ):
        scheme = required(channel)
        assert scheme["type"] == "oauth2" and scheme["scopes"] == scopes, channel
        assert scheme["flows"]["password"] == {
            "availableScopes": {"items:read": "Read items.", "items:write": "Change items."},
            "tokenUrl": "http://api.example.com/token",
        }
    # A token with no scope named: the scheme as declared, without a scopes list.
    assert "scopes" not in required("token")
    assert required("token") == schemes["OAuth2PasswordBearer"]
    # Routes needing the same scopes share one component.
    operations = document["operations"]
    assert operations["read.receive"]["security"] == operations["gated.receive"]["security"]


# --- served routes -----------------------------------------------------------------------


def test_served_document_and_page(validator: jsonschema.protocols.Validator) -> None:
    with (
        ServerThread(asyncapi_rich.app) as hostport,
        httpx.Client(base_url=f"http://{hostport}", timeout=10, trust_env=False) as http,
    ):
        served = http.get("/asyncapi.json")
        assert served.status_code == 200
        assert served.headers["content-type"] == "application/json"
        expected = json.loads(json.dumps(asyncapi_for_app(asyncapi_rich.app, host=hostport)))
        assert served.json() == expected
        check(served.json(), validator)
        page = http.get("/asyncapi")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<meta charset="utf-8">' in page.text
        assert 'src="/asyncapi/static/index.js?v=' in page.text
        assert "unpkg" not in page.text and "cdn" not in page.text.lower()
        embedded = re.search(
            r'<script id="asyncapi-document" type="application/json">(.*?)</script>', page.text
        )
        assert embedded and json.loads(embedded.group(1)) == expected
        bundle = http.get("/asyncapi/static/index.js")
        assert bundle.status_code == 200 and "AsyncApiStandalone" in bundle.text[:2000]
        assert http.get("/asyncapi/static/default.min.css").status_code == 200
        assert http.get("/asyncapi/static/LICENSE").status_code == 200
        # The app's own routes are untouched: HTTP route, 426 fallback, FastAPI's OpenAPI.
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/echo").status_code == 426
        assert "/asyncapi" not in json.dumps(http.get("/openapi.json").json()["paths"])


def test_docs_can_be_turned_off_or_moved() -> None:
    off = echo_app(asyncapi_url=None, asyncapi_docs_url=None)
    moved = echo_app(asyncapi_url="/docs/ws.json", asyncapi_docs_url="/docs/ws")
    page_only = echo_app(asyncapi_url=None)
    with (
        ServerThread(off) as a,
        ServerThread(moved) as b,
        ServerThread(page_only) as c,
        httpx.Client(timeout=10, trust_env=False) as http,
    ):
        for path in ("/asyncapi.json", "/asyncapi", "/asyncapi/static/index.js"):
            assert http.get(f"http://{a}{path}").status_code == 404, path
        assert http.get(f"http://{b}/asyncapi.json").status_code == 404
        assert http.get(f"http://{b}/docs/ws.json").json()["info"]["title"] == "Echo"
        assert 'src="/docs/ws/static/index.js?v=' in http.get(f"http://{b}/docs/ws").text
        assert http.get(f"http://{b}/docs/ws/static/index.js").status_code == 200
        # Without the JSON route the page still works: the document is embedded.
        assert http.get(f"http://{c}/asyncapi.json").status_code == 404
        assert '"title": "Echo"' in http.get(f"http://{c}/asyncapi").text


def test_cdn_is_opt_in() -> None:
    with (
        ServerThread(echo_app(asyncapi_cdn=UNPKG)) as hostport,
        httpx.Client(timeout=10, trust_env=False) as http,
    ):
        page = http.get(f"http://{hostport}/asyncapi").text
        assert f'src="{UNPKG}/browser/standalone/index.js"' in page
        assert f'href="{UNPKG}/styles/default.min.css"' in page
        assert http.get(f"http://{hostport}/asyncapi/static/index.js").status_code == 404


def test_an_http_route_of_the_app_wins() -> None:
    app = echo_app()

    @app.get("/asyncapi.json")  # declared after install: still wins
    async def mine() -> dict[str, bool]:
        return {"mine": True}

    @app.get("/asyncapi", response_class=PlainTextResponse)
    async def my_page() -> str:
        return "my page"

    with (
        ServerThread(app) as hostport,
        httpx.Client(base_url=f"http://{hostport}", timeout=10, trust_env=False) as http,
    ):
        assert http.get("/asyncapi.json").json() == {"mine": True}
        assert http.get("/asyncapi").text == "my page"


def test_starlette_app_and_root_path(validator: jsonschema.protocols.Validator) -> None:
    ws = WsRouter()

    @ws.message("/echo")
    async def echo(data: str, channel: Channel) -> None:
        await channel.send(data)

    app = Starlette()
    ws.install(app)
    # Behind a proxy that strips /api: every URL the document and page give is under it.
    with (
        ServerThread(app, root_path="/api") as hostport,
        httpx.Client(base_url=f"http://{hostport}", timeout=10, trust_env=False) as http,
    ):
        document = http.get("/asyncapi.json").json()
        check(document, validator)
        assert document["info"] == {"title": "WebSocket API", "version": "0.1.0"}
        server = document["servers"]["default"]
        assert server["pathname"] == "/api" and server["host"] == hostport
        assert server["x-wsroute-multiplex"]["client"] == "/api/wsroute/multiplex.js"
        assert 'src="/api/asyncapi/static/index.js?v=' in http.get("/asyncapi").text


# --- command line ------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "wsroute", "asyncapi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_prints_and_writes_the_document(
    tmp_path: Path, validator: jsonschema.protocols.Validator
) -> None:
    printed = run_cli("tests.apps.asyncapi_rich:app")
    assert printed.returncode == 0, printed.stderr
    document = json.loads(printed.stdout)
    check(document, validator)
    assert document == json.loads(json.dumps(asyncapi_for_app(asyncapi_rich.app)))
    output = tmp_path / "asyncapi.json"
    written = run_cli(
        "tests.apps.asyncapi_rich:app", "--output", str(output), "--host", "example.com", "--protocol", "wss"
    )
    assert written.returncode == 0, written.stderr
    assert written.stdout == ""
    saved = json.loads(output.read_text(encoding="utf-8"))
    assert saved["servers"]["default"]["host"] == "example.com"
    assert saved["servers"]["default"]["protocol"] == "wss"
    failed = run_cli("tests.apps.no_such_module:app")
    assert failed.returncode != 0 and "cannot import" in failed.stderr
    not_installed = run_cli("tests.apps.asyncapi_rich:health")
    assert not_installed.returncode != 0 and "error:" in not_installed.stderr


def test_cli_check_warns_about_what_the_document_leaves_out(tmp_path: Path) -> None:
    app = tmp_path / "undocumented_app.py"
    app.write_text(
        """
from typing import Annotated, Never
from fastapi import Depends, FastAPI
from wsroute import Broker, Channel, WsRouter

ws = WsRouter()


def notify(broker: Broker) -> Broker:
    return broker


@ws.message("/bare")
async def bare(data: str, channel: Channel) -> None:
    await channel.send(data)


@ws.join("/fanout")
async def fanout(broker: Broker) -> None:
    \"\"\"Tell the lobby.\"\"\"
    await broker.broadcast_to("/lobby", "someone came")


@ws.leave("/fanout")
async def bye(notifier: Annotated[Broker, Depends(notify)]) -> None:
    \"\"\"Through a dependency.\"\"\"


@ws.message("/declared", sends=[str])
async def declared(data: str, channel: Channel, broker: Broker) -> None:
    \"\"\"Trusted: it declares what it sends.\"\"\"


@ws.message("/elsewhere", sends=[Never])
async def elsewhere(data: str, broker: Broker) -> None:
    \"\"\"Publishes to other routes only, whose handlers declare it.\"\"\"


app = FastAPI()
ws.install(app)
""",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "wsroute", "asyncapi", "undocumented_app:app", *args]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    unchecked = run()
    assert unchecked.returncode == 0 and unchecked.stderr == ""
    checked = run("--check")
    assert checked.returncode == 1
    document = json.loads(checked.stdout)
    assert document == json.loads(unchecked.stdout)  # the document all the same
    assert "elsewhere.send" not in document["operations"]  # sends=[Never]: no send operation
    warnings = [line for line in checked.stderr.splitlines() if line.startswith("warning: ")]
    fix = "declare what it sends on this route with sends=[...] on the decorator or a typed Channel[T]"
    assert warnings == [
        "warning: message handler 'bare' on /bare has no docstring: its operation has no summary",
        "warning: message handler 'bare' on /bare may send messages that are not documented:"
        f" it takes `channel: Channel`; {fix} (sends=[Never] if nothing)",
        "warning: join handler 'fanout' on /fanout may send messages that are not documented:"
        f" it takes `broker: Broker`; {fix} (sends=[Never] if nothing)",
        "warning: leave handler 'bye' on /fanout may send messages that are not documented:"
        f" it takes `broker: Broker` (in its dependency `notify`); {fix} (sends=[Never] if nothing)",
    ]
    assert "undocumented_app:app: 4 warning(s)" in checked.stderr
    for documented in ("tests.apps.asyncapi_rich:app", "tests.apps.asyncapi_tagged:app"):
        clean = run_cli(documented, "--check", "--output", str(tmp_path / "out.json"))
        assert clean.returncode == 0 and clean.stderr == "", clean.stderr
    assert asyncapi_warnings(asyncapi_rich.ws) == []


# --- the page in real Chromium -----------------------------------------------------------



@dataclasses.dataclass
class Seen:
    requests: list[str] = dataclasses.field(default_factory=list)
    page_errors: list[str] = dataclasses.field(default_factory=list)
    console_errors: list[str] = dataclasses.field(default_factory=list)


@pytest.mark.browser
async def test_page_renders_offline_in_chromium() -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    require_chromium()
    seen = Seen()
    async with serve(asyncapi_rich.app) as hostport, playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(20_000)
            page.on("request", lambda request: seen.requests.append(request.url))
            page.on("pageerror", lambda error: seen.page_errors.append(str(error)))
            page.on(
                "console",
                lambda message: (
                    seen.console_errors.append(message.text) if message.type == "error" else None
                ),
            )
            await page.goto(f"http://{hostport}/asyncapi", wait_until="load")
            await page.wait_for_function(
                "addresses => addresses.every(a => document.body.innerText.includes(a))",
                arg=RICH_ADDRESSES,
            )
            text = await page.evaluate("document.body.innerText")
            viewer_text = await page.evaluate("document.getElementById('asyncapi').innerText")
            # Markdown's inline code, as the viewer renders it, with what CSS adds around it.
            code = await page.evaluate(
                """[...document.querySelectorAll('#asyncapi .prose code')].map(c => [
                    c.textContent,
                    getComputedStyle(c, '::before').content,
                    getComputedStyle(c, '::after').content,
                ])"""
            )
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "asyncapi.png"))
        finally:
            await browser.close()
    for address in RICH_ADDRESSES:
        assert address in text
    # The viewer's own parser validates the document too, and would show its errors.
    assert "There are errors in your" not in text
    # Summaries are plain text and descriptions rendered Markdown: no backtick is shown, not
    # even the ones the viewer's stylesheet puts around inline code.
    assert "`" not in viewer_text
    rendered = {content for content, _, _ in code}
    assert {"rocket-multiplex", "joined", "Joined", "ChatOut"} <= rendered
    assert {(before, after) for _, before, after in code} <= {("none", "none"), ("normal", "normal")}
    assert "Rich wsroute app" in text and "ChatIn" in text
    assert seen.requests, "no request recorded"
    outside = [url for url in seen.requests if urlsplit(url).hostname != "127.0.0.1"]
    assert not outside, f"requests outside 127.0.0.1: {outside}"
    assert not seen.page_errors, seen.page_errors
    assert not seen.console_errors, seen.console_errors


def test_a_handler_that_returns_a_value_documents_its_reply(
    validator: jsonschema.protocols.Validator,
) -> None:
    ws = WsRouter()

    class Question(BaseModel):
        text: str

    class Answer(BaseModel):
        text: str

    @ws.message("/ask")
    async def ask(data: Question) -> Answer:
        """Answer a question."""
        return Answer(text=data.text)

    @ws.message("/tell")
    async def tell(data: str) -> None:
        """Take a statement; nothing to answer."""

    app = FastAPI()
    ws.install(app)
    document = asyncapi_for_app(app)
    check(document, validator)
    ask_op = document["operations"]["ask.receive"]
    assert ask_op["reply"] == {
        "channel": {"$ref": "#/channels/ask"},
        "messages": [{"$ref": "#/channels/ask/messages/Answer"}],
    }
    answer = document["channels"]["ask"]["messages"]["Answer"]
    assert answer["payload"] == {"$ref": "#/components/schemas/Answer"}
    assert "`Answer`" in ask_op["description"]
    assert "reply" not in document["operations"]["tell.receive"]
