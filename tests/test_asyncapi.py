"""The AsyncAPI 3.0 document, its routes, its page in real Chromium, and the command line.

Every generated document is validated against the official AsyncAPI 3.0.0 JSON Schema
(``tests/asyncapi/3.0.0.json``, vendored from the npm package ``@asyncapi/specs``) and by a
walker for what JSON Schema cannot see: every ``$ref`` resolves, every operation's channel
exists and its messages belong to that channel, every address parameter is declared.

Chromium is Debian's (``/usr/bin/chromium``) driven by the ``playwright`` package; never run
``playwright install``.
"""

from __future__ import annotations

import dataclasses
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

from apps import asyncapi_rich
from server import serve
from support.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_chromium
from wsroute import Channel, Data, Guard, HandshakeRequest, WsRouter
from wsroute.asyncapi import UNPKG, SecurityScheme, asyncapi_document, asyncapi_for_app

ROOT = Path(__file__).parent.parent
SCHEMA = Path(__file__).parent / "asyncapi" / "3.0.0.json"
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


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    assert cls is jsonschema.Draft7Validator  # what the schema declares
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


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
    """Valid AsyncAPI 3.0.0, JSON as served, and every reference where it belongs."""
    document = json.loads(json.dumps(document))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    best = jsonschema.exceptions.best_match(errors)
    assert not errors, f"{len(errors)} errors; best match: {best}"
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
    broken["operations"]["said"]["messages"] = [{"$ref": "#/channels/echo/messages/echo"}]
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
    assert "maxLength 40" in rooms["parameters"]["room"]["description"]
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

    said = payloads("said")["said"]
    assert said["payload"] == {"$ref": "#/components/schemas/ChatIn"}
    assert said["contentType"] == "application/json"
    # Nested models and enums are hoisted into components, not left in $defs.
    assert schemas["ChatIn"]["properties"]["attachments"]["items"] == {
        "$ref": "#/components/schemas/Attachment"
    }
    assert "Kind" in schemas and "$defs" not in json.dumps(rich)
    assert (
        ops["said"]["action"] == "receive"
        and ops["said"]["summary"] == "Broadcast what a client says to the room."
    )
    assert set(payloads("said.send")) == {"ChatOut"}  # from Channel[ChatOut]
    assert set(payloads("joined.send")) == {"Joined", "ChatOut"}  # sends= and Channel[ChatOut]
    assert set(payloads("left.send")) == {"Left"}
    assert ops["joined.send"]["action"] == "send"
    assert payloads("echo")["echo"]["contentType"] == "text/plain"
    assert payloads("upload")["upload"]["payload"] == {"type": "string", "format": "binary"}
    raw = payloads("raw")
    assert {m["contentType"] for m in raw.values()} == {"text/plain", "application/octet-stream"}
    ping = payloads("raw.send")["Ping"]
    assert ping["contentType"] == "text/plain" and "Ping.into_message()" in ping["description"]
    assert len(payloads("either")) == 2  # str | bytes: a text and a binary message
    assert set(payloads("either.send")) == {"ChatOut", "Joined"}  # Channel[ChatOut | Joined]
    assert payloads("admin.send")["dict_str_int"]["payload"]["additionalProperties"] == {"type": "integer"}
    assert ops["echo"]["description"] == "The reply is the message, unchanged."


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

    assert names("said") == {"User"}
    assert names("left.send") == {"User"}
    assert names("raw") == {"APIKeyHeader"}
    assert names("admin") == {"AdminToken"}  # the Anyone guard describes no security
    assert names("upload") == {"HTTPBearer", "OAuth2PasswordBearer"}
    assert "Requires all of these security schemes" in rich["operations"]["upload"]["description"]
    assert names("echo") == set()


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
    operation = document["operations"]["weird_name"]
    assert operation["summary"] == "Summary line continued." and operation["description"].startswith("Body.")
    sent = [_pointer(document, ref["$ref"]) for ref in document["operations"]["weird_name.send"]["messages"]]
    assert len({m["payload"]["$ref"] for m in sent[:2]}) == 2  # two models named Item, two schemas
    assert "no JSON Schema" in sent[2]["payload"]["description"]
    assert document["operations"]["twin"]["messages"] != operation["messages"]
    assert {"Token", "Token_2"} <= set(document["components"]["securitySchemes"])
    assert document["channels"]["v1"]["address"] == "/v1"
    assert len(document["operations"]["root"]["messages"]) == 2  # text or binary
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

    def message(handler: str) -> dict[str, Any]:
        (ref,) = document["operations"][handler]["messages"]
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

    def required(op_id: str) -> dict[str, Any]:
        (ref,) = document["operations"][op_id]["security"]
        return dict(_pointer(document, ref["$ref"]))

    for op_id, scopes in (
        ("read", ["items:read"]),
        ("write", ["items:read", "items:write"]),
        ("both", ["items:read", "items:write"]),
        ("gated_message", ["items:read"]),
    ):
        scheme = required(op_id)
        assert scheme["type"] == "oauth2" and scheme["scopes"] == scopes, op_id
        assert scheme["flows"]["password"] == {
            "availableScopes": {"items:read": "Read items.", "items:write": "Change items."},
            "tokenUrl": "http://api.example.com/token",
        }
    # A token with no scope named: the scheme as declared, without a scopes list.
    assert "scopes" not in required("token_only")
    assert required("token_only") == schemes["OAuth2PasswordBearer"]
    # Routes needing the same scopes share one component.
    assert document["operations"]["read"]["security"] == document["operations"]["gated_message"]["security"]


# --- served routes -----------------------------------------------------------------------


def test_served_document_and_page(validator: jsonschema.protocols.Validator) -> None:
    with (
        serve(asyncapi_rich.app) as hostport,
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
        serve(off) as a,
        serve(moved) as b,
        serve(page_only) as c,
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
    with serve(echo_app(asyncapi_cdn=UNPKG)) as hostport, httpx.Client(timeout=10, trust_env=False) as http:
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
        serve(app) as hostport,
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
        serve(app, root_path="/api") as hostport,
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


# --- the page in real Chromium -----------------------------------------------------------



@dataclasses.dataclass
class Seen:
    requests: list[str] = dataclasses.field(default_factory=list)
    page_errors: list[str] = dataclasses.field(default_factory=list)
    console_errors: list[str] = dataclasses.field(default_factory=list)


async def test_page_renders_offline_in_chromium() -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    require_chromium()
    seen = Seen()
    with serve(asyncapi_rich.app) as hostport:
        async with playwright_api.async_playwright() as pw:
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
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "asyncapi.png"))
            finally:
                await browser.close()
    for address in RICH_ADDRESSES:
        assert address in text
    # The viewer's own parser validates the document too, and would show its errors.
    assert "There are errors in your" not in text
    assert "Rich wsroute app" in text and "ChatIn" in text
    assert seen.requests, "no request recorded"
    outside = [url for url in seen.requests if urlsplit(url).hostname != "127.0.0.1"]
    assert not outside, f"requests outside 127.0.0.1: {outside}"
    assert not seen.page_errors, seen.page_errors
    assert not seen.console_errors, seen.console_errors
