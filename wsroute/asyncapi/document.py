"""Generate the AsyncAPI 3.0.0 document of a `WsRouter` from its registered handlers.

The mapping, in AsyncAPI terms ("the application" is the server):

* one **channel** per route path: handlers on the same path (join, message, leave) share it.
  Its ``address`` is the path in template form (``/rooms/{room}``; an anonymous ``{_}``
  becomes ``{_0}``, ``{_1}``, …), its ``parameters`` are the path parameters, and its ``ws``
  binding holds the handshake's query and header parameters as JSON Schemas;
* one **receive** operation per channel with ``message`` handlers: what clients send, its
  messages those of every message handler on the path, each one's JSON Schema taken from
  the whole message annotation, ``Annotated`` constraints and discriminators included
  (``str`` → text frame, ``bytes`` → binary frame, ``Data`` or ``str | bytes`` → either,
  anything else → JSON validated by pydantic);
* one **send** operation per channel whose handlers declare what they send (``sends=`` on
  the decorator, or a typed ``Channel[T]`` parameter): the union of their messages, its
  description saying which handler sends which;
* ``components.schemas`` holds every model, so each ``$ref`` resolves inside the document;
  ``components.securitySchemes`` the schemes of guards (their ``security`` attribute) and of
  FastAPI security dependencies, referenced by the operations whose handlers use them; an
  OAuth2 or OpenID Connect scheme that a handler reaches through ``Security(..., scopes=…)``
  is referenced as a copy listing those ``scopes``;
* the server carries the ``rocket-multiplex`` sub-protocol as ``x-wsroute-multiplex`` and the
  router's limits as ``x-wsroute-limits``.

Summaries are plain text (AsyncAPI renders them so), descriptions CommonMark. Join and leave
handlers have no message of their own: they are listed in the channel's description.
`asyncapi_warnings` lists what the document cannot describe (``--check`` on the command line).
"""

from __future__ import annotations

import inspect
import itertools
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from fastapi.security.base import SecurityBase
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonRef, JsonSchemaValue
from pydantic_core import PydanticUndefined, to_jsonable_python

from wsroute.injection import (
    DependencySource,
    Plan,
    RequestParam,
    SecurityRequirement,
    Source,
    _BrokerSource,
    _ChannelSource,
)
from wsroute.messages import Data, FrameKind, received_frame_kind, sent_frame_kind, split_annotated
from wsroute.multiplex import codec
from wsroute.router import WsRouter
from wsroute.routes import PATH_PARAM, Handler
from wsroute.security import from_fastapi

ASYNCAPI_VERSION = "3.0.0"
"""Not 3.1.0 yet: the newest Modelina (5.10.1, behind ``asyncapi generate models``) makes
no model of a 3.1.0 document (asyncapi/cli#2227). The document is valid 3.1.0 too."""
SCHEMA_REF = "#/components/schemas/{model}"
Mode = Literal["validation", "serialization"]

_UNSAFE_KEY = re.compile(r"[^\w.\-]+")
_CONVERTOR_TEXT = {
    "str": "one path segment (no `/`)",
    "int": "an integer",
    "float": "a number",
    "uuid": "a UUID",
    "path": "the rest of the path (may contain `/`)",
}
_CONVERTOR_TYPE = {"str": "string", "int": "integer", "float": "number", "uuid": "string", "path": "string"}
_TYPE_TEXT = {"integer": "an integer", "number": "a number", "boolean": "a boolean", "string": "text"}
_EVENT = {"join": "on connect", "message": "on each message", "leave": "on disconnect"}
# Inline Markdown that a plain-text summary shows literally: links, code spans, strong, emphasis.
_MARKUP = (
    (re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\[[^\]]*\])"), r"\1"),
    (re.compile(r"(`+)\s?(.+?)\s?\1"), r"\2"),
    (re.compile(r"(\*\*|__)(\S.*?)\1"), r"\2"),
    (re.compile(r"(?<![\w*])\*(\S[^*]*?)\*(?![\w*])"), r"\1"),
)
_TEXT = {"type": "string"}
_BINARY = {"type": "string", "format": "binary"}


def asyncapi_document(
    router: WsRouter,
    *,
    title: str | None = None,
    version: str | None = None,
    description: str | None = None,
    host: str = "localhost:8000",
    protocol: str = "ws",
    pathname: str = "",
    servers: Mapping[str, Mapping[str, Any]] | None = None,
    multiplex_client: str | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of `router`'s handlers, as a JSON-able dict.

    `title`, `version` and `description` default to the router's own (``WsRouter(title=…)``).
    The one server is `host` (``"example.com"`` or ``"127.0.0.1:8000"``) with `protocol`
    (``"ws"`` or ``"wss"``) and the app's mount point `pathname`; pass `servers` (AsyncAPI
    Server Objects by name) to describe several instead. `multiplex_client` is the URL of the
    browser client, mentioned in the multiplex extension.
    """
    return _Builder(router, host=host, protocol=protocol, pathname=pathname).build(
        title=title or router.title or "WebSocket API",
        version=version or router.version or "0.1.0",
        description=description if description is not None else router.description,
        servers=servers,
        multiplex_client=multiplex_client,
    )


# --- small helpers -------------------------------------------------------------------------


def _key(text: str, fallback: str = "x") -> str:
    """A component/channel/operation key: AsyncAPI allows ``[\\w.-]`` only."""
    return _UNSAFE_KEY.sub("_", text).strip("_") or fallback


def _unique(key: str, taken: Mapping[str, Any] | set[str]) -> str:
    if key not in taken:
        return key
    n = 2
    while f"{key}_{n}" in taken:
        n += 1
    return f"{key}_{n}"


def _docstring(handler: Handler) -> tuple[str | None, str | None]:
    """(first paragraph, the rest) of the handler's docstring, as Markdown; ``summary=`` on
    the decorator stands for the first paragraph, and the rest is then the whole docstring."""
    doc = inspect.getdoc(handler.fn) or ""
    first, _, rest = doc.partition("\n\n")
    summary = handler.options.summary or " ".join(first.split()) or None
    body = doc if handler.options.summary else rest.strip()
    return summary, body or None


def _plain(markdown: str) -> str:
    """`markdown` (one paragraph) as plain text: AsyncAPI summaries are not rendered."""
    for pattern, replacement in _MARKUP:
        markdown = pattern.sub(replacement, markdown)
    return markdown


def _range_text(low: Any, high: Any, both: str, unit: str) -> list[str]:
    """``["3 to 8 characters"]``, ``["at most 8 characters"]``, … or ``[]`` without bounds."""
    if low is not None and high is not None:
        return [both.format(low, high) + unit]
    if high is not None:
        return [f"at most {high}{unit}"]
    if low is not None:
        return [f"at least {low}{unit}"]
    return []


def _constraint_text(schema: Mapping[str, Any], convertor: str) -> list[str]:
    """A path parameter's JSON Schema constraints in words (``matching `^[a-z]+$```)."""
    words = []
    if "pattern" in schema:
        words.append(f"matching the pattern `{schema['pattern']}`")
    words += _range_text(schema.get("minLength"), schema.get("maxLength"), "{} to {}", " characters")
    words += _range_text(schema.get("minimum"), schema.get("maximum"), "from {} to {}", "")
    if "exclusiveMinimum" in schema:
        words.append(f"greater than {schema['exclusiveMinimum']}")
    if "exclusiveMaximum" in schema:
        words.append(f"less than {schema['exclusiveMaximum']}")
    if "format" in schema and schema["format"] != convertor:
        words.append(f"in the `{schema['format']}` format")
    return words


def _path_schema(param: RequestParam) -> dict[str, Any]:
    """The JSON Schema of a path parameter, its own ``$ref`` (an Enum) resolved."""
    schema: dict[str, Any] = param.adapter.json_schema()
    ref = schema.get("$ref")
    if isinstance(ref, str):
        schema = schema.get("$defs", {}).get(ref.rsplit("/", 1)[-1], schema)
    return schema


def _raw_payload(frame: str, tp: Any, mode: Mode) -> dict[str, Any]:
    """The payload schema of a raw text or binary frame, with the constraints `tp` states."""
    plain = _TEXT if frame == "text" else _BINARY
    base, metadata = split_annotated(tp)
    if frame == "text" and typing.get_origin(base) is typing.Literal:
        return {**plain, "enum": list(typing.get_args(base))}  # Literal["on", "off"], sent raw
    if not metadata or base is Data:
        return dict(plain)
    kind = str if frame == "text" else bytes
    try:
        constrained: Any = typing.Annotated[(kind, *metadata)]
        schema: dict[str, Any] = TypeAdapter(constrained).json_schema(mode=mode)
    except Exception:  # metadata pydantic cannot describe only costs precision in the docs
        return dict(plain)
    return {**plain, **schema}


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _type_title(tp: Any) -> str:
    if tp is str:
        return "text"
    if tp in (bytes, bytearray, memoryview):
        return "binary"
    if isinstance(tp, type):
        return tp.__name__
    # typing's repr qualifies names with their module: keep the last part of each.
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", repr(tp).replace("typing.", ""))


def _split_union(tp: Any) -> list[Any]:
    """`A | B` as [A, B] (one message each); ``Optional`` and other types stay whole."""
    if typing.get_origin(tp) is typing.Annotated:
        # Annotated[A | B, Field(discriminator=...)]: the members are still the messages.
        inner = typing.get_args(tp)[0]
        if _is_union(inner):
            return _split_union(inner)
    if _is_union(tp):
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        if len(members) > 1 and set(members) != {str, bytes}:
            return [leaf for member in members for leaf in _split_union(member)]
    return [tp]


def _reply_types(reply: Any) -> list[Any]:
    """The messages a handler returning `reply` answers with: a union split as `sends` are
    (``Node | str`` is a JSON message and a text one), and a raw ``X | None`` as ``X``: a
    handler that returns None replies with an empty frame."""
    found = []
    for tp in _split_union(reply):
        if _is_union(tp):  # X | None, which _split_union keeps whole
            inner = [member for member in typing.get_args(tp) if member is not type(None)]
            if len(inner) == 1 and sent_frame_kind(inner[0]) != "json":
                tp = inner[0]
                if typing.get_origin(tp) is typing.Literal:  # None arrives as "" among the values
                    tp = typing.Literal[(*typing.get_args(tp), "")]
        found.append(tp)
    return found


def _identity(tp: Any) -> Any:
    """`tp` as a dict key (an unhashable annotation by its id: it is kept alive meanwhile)."""
    try:
        hash(tp)
    except TypeError:
        return id(tp)
    return tp


def _message(title: str, frame: str, payload: dict[str, Any], text: str) -> dict[str, Any]:
    content_type = {"json": "application/json", "text": "text/plain", "binary": "application/octet-stream"}
    return {"title": title, "contentType": content_type[frame], "payload": payload, "description": text}


def _scheme_names(security: Sequence[Mapping[str, str]]) -> str:
    return ", ".join(f"`{ref['$ref'].rsplit('/', 1)[-1]}`" for ref in security)


def _operation(
    action: str,
    channel_id: str,
    title: str,
    summary: str,
    body: str | None,
    messages: list[dict[str, str]],
    security: list[dict[str, str]],
) -> dict[str, Any]:
    """An operation; `summary` is plain text, `body` (its description) Markdown."""
    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "title": title,
        "summary": summary,
    }
    if body:
        operation["description"] = body
    operation["messages"] = messages
    if security:
        operation["security"] = security
    return operation


def _never(tp: Any) -> bool:
    """``Never``/``NoReturn``: declared with ``Channel[Never]``, the handler sends nothing."""
    return tp is typing.Never or tp is typing.NoReturn


def _sends(handler: Handler) -> list[Any]:
    """The types `handler` declares it sends, unions split, each once."""
    found: dict[Any, Any] = {}
    for declared in (*handler.options.sends, *handler.plan.interface.sends):
        for tp in _split_union(declared):
            if not _never(tp):
                found.setdefault(_identity(tp), tp)
    return list(found.values())


def _may_send(sources: Sequence[tuple[str, Source]], where: str = "") -> str | None:
    """The first parameter (of the handler or of a dependency) that can send: a `Channel`
    or a `Broker`, described for a warning; None without one."""
    for name, source in sources:
        if isinstance(source, _ChannelSource | _BrokerSource):
            kind = "Channel" if isinstance(source, _ChannelSource) else "Broker"
            return f"`{name}: {kind}`{where}"
        if isinstance(source, DependencySource):
            call = getattr(source.call, "__name__", type(source.call).__name__)
            found = _may_send(source.params, f" (in its dependency `{call}`)")
            if found:
                return found
    return None


def asyncapi_warnings(router: WsRouter) -> list[str]:
    """What the document of `router` leaves out, one sentence per handler and problem.

    A handler without a docstring (or ``summary=``) gets no summary. A handler that takes a
    `Channel` or a `Broker` (itself or through a dependency) but declares nothing it sends
    — no ``sends=[...]``, no typed ``Channel[T]`` — may send messages that no operation
    lists. A declaration is trusted; ``sends=[Never]`` or ``Channel[Never]`` declares that
    a handler sends nothing on its route. ``python -m wsroute asyncapi --check`` prints these.
    """
    warnings = []
    for handler in sorted(router.table.handlers, key=lambda h: h.order):
        where = f"{handler.kind} handler {handler.name!r} on {handler.path}"
        if not handler.options.summary and not inspect.getdoc(handler.fn):
            warnings.append(f"{where} has no docstring: its operation has no summary")
        if not handler.options.sends and not handler.plan.interface.sends:
            plan: Plan = handler.plan
            found = _may_send([*plan.connection_params, *plan.event_params])
            if found:
                warnings.append(
                    f"{where} may send messages that are not documented: it takes {found}; "
                    "declare what it sends on this route with sends=[...] on the decorator "
                    "or a typed Channel[T] (sends=[Never] if nothing)"
                )
    return warnings


# --- schemas -------------------------------------------------------------------------------


def _tag_value(prop: Any) -> str | None:
    """The one value a property schema allows (``const``, or a one-value ``enum``), as JSON;
    None when it allows more (or is not a schema)."""
    if not isinstance(prop, dict):
        return None
    if "const" in prop:
        return json.dumps(prop["const"], sort_keys=True)
    values = prop.get("enum")
    if isinstance(values, list) and len(values) == 1:
        return json.dumps(values[0], sort_keys=True)
    return None


_JSON_TYPES: dict[type, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}


class _AsyncApiJsonSchema(GenerateJsonSchema):
    """Pydantic's JSON Schema in AsyncAPI's dialect, with tags that generated clients use.

    Pydantic writes a discriminated union's discriminator as OpenAPI's object
    (``{"propertyName": ..., "mapping": ...}``); an AsyncAPI Schema Object's
    ``discriminator`` is the property's name, and the object form makes the document
    invalid. Each member still states its tag (a ``const``), so the mapping is not lost.

    A tag field, ``type: Literal["said"] = "said"``, is ``required``: pydantic leaves it out
    because of its default, and a client generated from the schema would then make it
    optional. A plain union of models that each have such a tag, distinct, on the same
    field is a ``oneOf`` with that ``discriminator``, as if pydantic had been told; each
    tag is titled after its model (see `model_schema`).
    """

    def field_is_required(self, field: Any, total: bool) -> bool:
        """Pydantic's answer, and true for a single-value ``Literal`` defaulting to its value."""
        if super().field_is_required(field, total):
            return True
        schema = field["schema"]
        if schema["type"] != "default" or field.get("serialization_exclude_if") is not None:
            return False
        inner = schema["schema"]
        return bool(inner["type"] == "literal" and list(inner["expected"]) == [schema.get("default")])

    def model_schema(self, schema: Any) -> JsonSchemaValue:
        """Pydantic's, each tag titled after its model (``Said Type``), unless titled by hand.

        Modelina names the enum it makes of a discriminated union's tag after the tag's
        title: with pydantic's (``Type`` in every member) the members' enums collide, and
        Modelina 5.10.1 keeps the last one, so the TypeScript it writes does not compile.
        """
        json_schema = super().model_schema(schema)
        properties = json_schema.get("properties")
        # Pydantic before 2.7 adds the model's title after this method: read it the same way.
        config_title = schema.get("config", {}).get("title")
        model_title = json_schema.get("title") or config_title or schema["cls"].__name__
        if not isinstance(properties, dict) or not isinstance(model_title, str):
            return json_schema
        for name, prop in properties.items():
            if _tag_value(prop) is not None and prop.get("title") == name.title().replace("_", " "):
                prop["title"] = f"{model_title} {prop['title']}"
        return json_schema

    def literal_schema(self, schema: Any) -> JsonSchemaValue:
        """Pydantic's, with the JSON type of a one-value literal as newer pydantic writes it
        (``{"const": "said", "type": "string"}``), whatever pydantic version runs."""
        json_schema = super().literal_schema(schema)
        if "const" in json_schema and "type" not in json_schema:
            kind = _JSON_TYPES.get(type(json_schema["const"]))
            if kind is not None:
                json_schema["type"] = kind
        return json_schema

    def tagged_union_schema(self, schema: Any) -> JsonSchemaValue:
        """The union's ``oneOf``, its discriminator as the tag property's name."""
        json_schema = super().tagged_union_schema(schema)
        discriminator = json_schema.get("discriminator")
        if isinstance(discriminator, dict):
            json_schema["discriminator"] = discriminator["propertyName"]
        return json_schema

    def union_schema(self, schema: Any) -> JsonSchemaValue:
        """Pydantic's ``anyOf``; a ``oneOf`` with a ``discriminator`` when its members are tagged."""
        json_schema = super().union_schema(schema)
        members = json_schema.get("anyOf")
        if isinstance(members, list):
            tag = self._common_tag(members)
            if tag is not None:
                rest = {key: value for key, value in json_schema.items() if key != "anyOf"}
                json_schema = {"oneOf": members, "discriminator": tag, **rest}
        return json_schema

    def _common_tag(self, members: list[JsonSchemaValue]) -> str | None:
        """The first property that every member requires with one constant value, the
        values all different; None when there is none (or a member is not resolved yet)."""
        tags: list[dict[str, Any]] = []
        for member in members:
            resolved: Any = member
            if set(member) == {"$ref"}:
                try:
                    resolved = self.get_schema_from_definitions(JsonRef(member["$ref"]))
                except Exception:  # a reference pydantic cannot resolve now: no discriminator
                    return None
            if not isinstance(resolved, dict) or not isinstance(resolved.get("properties"), dict):
                return None
            required = resolved.get("required", [])
            own = {
                name: tag
                for name, prop in resolved["properties"].items()
                if name in required and (tag := _tag_value(prop)) is not None
            }
            tags.append(own)
        if len(tags) < 2:
            return None
        for name in tags[0]:
            values = [own[name] for own in tags if name in own]
            if len(values) == len(tags) and len(set(values)) == len(values):
                return str(name)
        return None


class _Schemas:
    """JSON Schemas requested while building, generated together at the end.

    Generating them in one `TypeAdapter.json_schemas` call gives every model one name in
    ``components.schemas`` (pydantic disambiguates two models that share a name) and
    rewrites each ``$ref`` to point there.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[dict[str, Any], TypeAdapter[Any], Mode]] = []

    def of(self, target: Any, mode: Mode) -> dict[str, Any]:
        """A placeholder dict that `finish` fills with the JSON Schema of `target`.

        `target` is a type or a ready `TypeAdapter`. A type pydantic cannot describe gets
        an empty (any) schema saying so, rather than failing the whole document.
        """
        out: dict[str, Any] = {}
        try:
            adapter = target if isinstance(target, TypeAdapter) else TypeAdapter(target)
            # Fail here, not in the shared call.
            adapter.json_schema(mode=mode, schema_generator=_AsyncApiJsonSchema)
        except Exception as exc:
            out["description"] = f"{_type_title(target)} (no JSON Schema: {type(exc).__name__})"
            return out
        self._pending.append((out, adapter, mode))
        return out

    def finish(self) -> dict[str, Any]:
        """Fill every placeholder; returns the shared definitions for ``components.schemas``."""
        if not self._pending:
            return {}
        inputs = [(index, mode, adapter) for index, (_, adapter, mode) in enumerate(self._pending)]
        by_key, shared = TypeAdapter.json_schemas(
            inputs, ref_template=SCHEMA_REF, schema_generator=_AsyncApiJsonSchema
        )
        for index, (out, _, mode) in enumerate(self._pending):
            out.update(by_key[(index, mode)])
        defs: dict[str, Any] = shared.get("$defs", {})
        return defs


# --- the builder ---------------------------------------------------------------------------


class _Builder:
    def __init__(self, router: WsRouter, *, host: str, protocol: str, pathname: str) -> None:
        self.router = router
        self.host = host
        self.protocol = protocol
        self.pathname = pathname.rstrip("/")
        self.schemas = _Schemas()
        self.channels: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.security_schemes: dict[str, dict[str, Any]] = {}
        self.message_keys: dict[tuple[Any, ...], str] = {}
        # Relative OAuth2 URLs become absolute against the app's HTTP base.
        http = {"ws": "http", "wss": "https"}.get(protocol, protocol)
        self.http_base = f"{http}://{host}{self.pathname}/"

    def build(
        self,
        *,
        title: str,
        version: str,
        description: str | None,
        servers: Mapping[str, Mapping[str, Any]] | None,
        multiplex_client: str | None,
    ) -> dict[str, Any]:
        by_path: dict[str, list[Handler]] = {}
        for handler in sorted(self.router.table.handlers, key=lambda h: h.order):
            by_path.setdefault(handler.path, []).append(handler)
        for path, handlers in by_path.items():
            self.channel(path, handlers)
        info: dict[str, Any] = {"title": title, "version": version}
        if description:
            info["description"] = description
        document: dict[str, Any] = {
            "asyncapi": ASYNCAPI_VERSION,
            "info": info,
            "defaultContentType": "application/json",
            "servers": self.servers(servers, multiplex_client),
            "channels": self.channels,
            "operations": self.operations,
        }
        components: dict[str, Any] = {}
        schemas = self.schemas.finish()
        if schemas:
            components["schemas"] = schemas
        if self.security_schemes:
            components["securitySchemes"] = self.security_schemes
        if components:
            document["components"] = components
        return document

    # --- servers ------------------------------------------------------------------------

    def servers(
        self, given: Mapping[str, Mapping[str, Any]] | None, multiplex_client: str | None
    ) -> dict[str, Any]:
        extensions = {"x-wsroute-limits": self.limits()}
        if self.router.settings.multiplex:
            extensions["x-wsroute-multiplex"] = self.multiplex(multiplex_client)
        if given is not None:
            return {_key(name): {**extensions, **server} for name, server in given.items()}
        server: dict[str, Any] = {"host": self.host, "protocol": self.protocol}
        if self.pathname:
            server["pathname"] = self.pathname
        text = "The application's WebSocket endpoint."
        if self.router.settings.multiplex:
            text += (
                f" A client may offer the `{codec.SUBPROTOCOL}` sub-protocol to reach several"
                " channels over one socket: see `x-wsroute-multiplex`."
            )
        server["description"] = text
        return {"default": {**server, **extensions}}

    def limits(self) -> dict[str, Any]:
        settings = self.router.settings
        limits: dict[str, Any] = {
            "maxMessageSize": settings.max_message_size,
            "maxQueue": settings.max_queue,
            "slowConsumer": settings.slow_consumer,
        }
        if settings.max_queue_bytes is not None:
            limits["maxQueueBytes"] = settings.max_queue_bytes
        if settings.rate_limit is not None:
            limits["rateLimit"] = {"messages": settings.rate_limit[0], "seconds": settings.rate_limit[1]}
        return limits

    def multiplex(self, client: str | None) -> dict[str, Any]:
        """The ``rocket-multiplex`` sub-protocol (docs/protocol.md), for clients that implement it."""
        sep = codec.SEP
        reason = codec.Reason
        described: dict[str, Any] = {
            "subprotocol": codec.SUBPROTOCOL,
            "description": (
                f"Offer `{codec.SUBPROTOCOL}` in Sec-WebSocket-Protocol to carry many channels"
                " (topics) over one socket. The connect URL is the first topic. Every data frame,"
                " text or binary, in both directions, is prefixed with its topic and the"
                " separator; control frames start with the separator."
            ),
            "separator": sep,
            "separatorCodePoint": "U+00B7",
            "dataFrame": f"TOPIC{sep}PAYLOAD",
            "controlFrame": f"{sep}ACTION({sep}PARAM)*[{sep}]",
            "limits": {
                "topicsPerSocket": self.router.settings.max_topics,
                "topicBytes": codec.MAX_TOPIC_BYTES,
                "controlBytes": codec.MAX_CONTROL_BYTES,
            },
            "clientActions": {
                "SUBSCRIBE": f"{sep}SUBSCRIBE{sep}topic",
                "UNSUBSCRIBE": f"{sep}UNSUBSCRIBE{sep}topic[{sep}code[{sep}reason]]",
            },
            "serverReplies": {
                "OK": f"{sep}OK{sep}ACTION{sep}PARAMS…",
                "ERR": f"{sep}ERR{sep}REASON{sep}ACTION{sep}PARAMS…",
                "INVALID": f"{sep}INVALID{sep}REASON",
                "UNSUBSCRIBE": f"{sep}UNSUBSCRIBE{sep}topic{sep}code{sep}reason",
            },
            "errReasons": [
                reason.ALREADY_SUBSCRIBED,
                reason.NOT_SUBSCRIBED,
                reason.TOO_MANY_TOPICS,
                reason.INVALID_TOPIC,
                "<HTTP status> <phrase> (a refused SUBSCRIBE, e.g. 404 Not Found)",
            ],
            "invalidReasons": [
                reason.NOT_SUBSCRIBED,
                reason.NO_CONTROL_CHARACTER,
                reason.CONTROL_TOO_LONG,
                reason.INVALID_CONTROL,
                reason.INVALID_UTF8,
            ],
        }
        if client:
            described["client"] = client
        return described

    # --- channels -----------------------------------------------------------------------

    def channel(self, path: str, handlers: list[Handler]) -> None:
        address, parameters = self.address(path, handlers)
        # "/rooms/{room}" → "rooms_room": readable in the page's anchors and in $refs.
        plain = _UNSAFE_KEY.sub("_", address.lstrip("/").replace("{", "").replace("}", "")).rstrip("_")
        channel_id = _unique(plain or "root", self.channels)
        channel: dict[str, Any] = {
            "address": address,
            "title": address,
            "description": self.channel_description(handlers),
            "messages": {},
        }
        if parameters:
            channel["parameters"] = parameters
        channel["bindings"] = {"ws": self.binding(handlers)}
        self.channels[channel_id] = channel
        gate = [h for h in handlers if h.kind == "join"]
        # Handlers on one path are tried by rank, then in registration order.
        receivers = sorted((h for h in handlers if h.kind == "message"), key=lambda h: (h.rank, h.order))
        if receivers:
            self.receive_operation(channel_id, address, receivers, gate)
        senders = [(h, sends) for h in handlers if (sends := _sends(h))]
        if senders:
            self.send_operation(channel_id, address, senders, gate)

    def address(self, path: str, handlers: list[Handler]) -> tuple[str, dict[str, Any]]:
        """The address template and its parameters (anonymous ``{_}`` named ``_0``, ``_1``…)."""
        declared: dict[str, RequestParam] = {}
        for handler in handlers:
            for param in handler.plan.interface.params:
                if param.where == "path":
                    # Several handlers take the parameter: keep the most detailed declaration.
                    known = declared.get(param.key)
                    if known is None or len(_path_schema(param)) > len(_path_schema(known)):
                        declared[param.key] = param
        names = {name for name, _ in PATH_PARAM.findall(path)}
        # names is read lazily: each anonymous name skips those taken so far.
        anonymous = (f"_{n}" for n in itertools.count() if f"_{n}" not in names)
        parameters: dict[str, Any] = {}

        def rename(match: re.Match[str]) -> str:
            name, convertor = match.group(1), match.group(2) or "str"
            kind = _CONVERTOR_TEXT.get(convertor, f"a `{convertor}` value")
            if name == "_":
                name = next(anonymous)
                names.add(name)
                text = f"Anonymous segment `{{_}}`: {kind}. Handlers do not receive it."
                parameters[name] = {"description": text}
            else:
                parameters[name] = self.path_parameter(name, convertor, declared.get(name))
            return "{" + name + "}"

        return PATH_PARAM.sub(rename, path), parameters

    def path_parameter(self, name: str, convertor: str, param: RequestParam | None) -> dict[str, Any]:
        """The Parameter Object of `name`: AsyncAPI 3.0 gives it no schema, so its
        description says what the path matches and what the handlers' validation adds."""
        kind = _CONVERTOR_TEXT.get(convertor, f"a `{convertor}` value")
        if param is None:
            return {"description": f"`{name}`: {kind}. No handler of this route takes it."}
        schema = _path_schema(param)
        parameter: dict[str, Any] = {}
        text = f"`{name}`: {kind}"
        type_ = schema.get("type")
        if isinstance(type_, str) and type_ != _CONVERTOR_TYPE.get(convertor):
            text += f", read as {_TYPE_TEXT.get(type_, type_)}"
        words = _constraint_text(schema, convertor)
        if words:
            text += ", " + ", ".join(words)
        text += "."
        if schema.get("description"):
            text += f" {schema['description']}"
        parameter["description"] = text
        values = schema.get("enum") or ([schema["const"]] if "const" in schema else None)
        if values:
            parameter["enum"] = [str(value) for value in values]
        if not param.required and param.default is not None:
            parameter["default"] = str(to_jsonable_python(param.default, fallback=str))
        return parameter

    def binding(self, handlers: list[Handler]) -> dict[str, Any]:
        """The ``ws`` channel binding: the handshake's query and header parameters."""
        groups: dict[str, dict[str, Any]] = {}
        required: dict[str, list[str]] = {}
        for handler in handlers:
            for param in handler.plan.interface.params:
                if param.where == "path":
                    continue
                props = groups.setdefault(param.where, {})
                if param.key in props:
                    continue
                schema = self.schemas.of(param.adapter, "validation")
                if not param.required and param.default is not None:
                    default = to_jsonable_python(param.default, fallback=lambda _: PydanticUndefined)
                    if default is not PydanticUndefined:
                        schema["default"] = default
                props[param.key] = schema
                if param.required:
                    required.setdefault(param.where, []).append(param.key)
        binding: dict[str, Any] = {"method": "GET"}
        for where, field in (("query", "query"), ("header", "headers"), ("cookie", "x-cookies")):
            if where in groups:
                schema = {"type": "object", "properties": groups[where]}
                if where in required:
                    schema["required"] = required[where]
                binding[field] = schema
        binding["bindingVersion"] = "0.1.0"
        return binding

    def channel_description(self, handlers: list[Handler]) -> str:
        lines = ["Handlers on this route:", ""]
        for handler in handlers:
            summary, _ = _docstring(handler)
            line = f"- **{handler.kind}** `{handler.name}` ({_EVENT[handler.kind]})"
            lines.append(f"{line}: {summary}" if summary else line)
        lines.append("")
        if any(h.options.query_in_topic for h in handlers):
            lines.append("Broadcast topic: the path the client connected to, with its query string.")
        else:
            lines.append("Broadcast topic: the path the client connected to (without the query string).")
        return "\n".join(lines)

    # --- messages and operations ---------------------------------------------------------

    def add_messages(
        self, channel_id: str, tp: Any, mode: Mode, name: str | None = None
    ) -> list[dict[str, str]]:
        """Add the message(s) of type `tp` to the channel; returns their references.

        Raw frames are described as such; ``Data`` (and ``str | bytes``) is two messages,
        one per frame kind, so that each has its own content type. A type already on the
        channel (sent by two handlers) is one message. ``Annotated`` metadata shapes the
        schema (constraints, a discriminator), not the frame kind or the title.
        """
        base, _ = split_annotated(tp)
        title = _type_title(base)
        frames: FrameKind = received_frame_kind(tp) if mode == "validation" else sent_frame_kind(tp)
        found: list[tuple[str, str, dict[str, Any]]] = []
        if frames == "json":
            way = "validated" if mode == "validation" else "serialized"
            text = f"JSON text (or binary) frame, {way} as `{title}`."
            found.append(("json", name or title, _message(title, "json", self.schemas.of(tp, mode), text)))
        else:
            text = ""
            if isinstance(base, type) and base not in (str, bytes, Data):
                doc = (inspect.getdoc(base) or "").partition("\n\n")[0]
                text = f" `{base.__name__}.into_message()`" + (f": {' '.join(doc.split())}" if doc else ".")
            for frame in ("text", "binary"):
                if frames in (frame, "either"):
                    key = f"{name or title}_{frame}" if frames == "either" else name or title
                    payload = _raw_payload(frame, tp, mode)
                    found.append((frame, key, _message(title, frame, payload, f"A {frame} frame.{text}")))
        messages: dict[str, Any] = self.channels[channel_id]["messages"]
        refs = []
        for frame, key, message in found:
            identity = (channel_id, name, _identity(tp), mode, frame)
            known = self.message_keys.get(identity)
            if known is None:
                known = self.message_keys[identity] = _unique(_key(key), messages)
                messages[known] = {"name": known, **message}
            refs.append({"$ref": f"#/channels/{channel_id}/messages/{known}"})
        return refs

    def message_titles(self, channel_id: str, refs: list[dict[str, str]]) -> list[str]:
        """The titles of the messages `refs` point to on the channel, each once."""
        messages: dict[str, Any] = self.channels[channel_id]["messages"]
        titles = (messages[ref["$ref"].rsplit("/", 1)[-1]]["title"] for ref in refs)
        return list(dict.fromkeys(titles))

    def merged_security(
        self, handlers: Sequence[Handler], gate: list[Handler]
    ) -> tuple[list[dict[str, str]], dict[Handler, str], str | None]:
        """The security of one operation for several handlers: the union of their schemes;
        when they differ, each handler's own in words (by handler), and a note either way
        when a handler needs several (AsyncAPI reads a list as "any one of")."""
        needs = {handler: self.security(handler, gate) for handler in handlers}
        union: list[dict[str, str]] = []
        for refs in needs.values():
            union.extend(ref for ref in refs if ref not in union)
        if all(refs == union for refs in needs.values()):
            if len(union) > 1:
                return union, {}, f"Requires all of these security schemes: {_scheme_names(union)}."
            return union, {}, None
        each = {
            handler: (
                f"requires all of {_scheme_names(refs)}"
                if len(refs) > 1
                else f"requires {_scheme_names(refs)}"
                if refs
                else "requires no security scheme"
            )
            for handler, refs in needs.items()
        }
        return union, each, "Each handler requires its own security schemes, listed with it."

    def receive_limits(self, handler: Handler) -> dict[str, Any]:
        """The extensions stating a message handler's size and rate limits."""
        limits: dict[str, Any] = {
            "x-wsroute-max-message-size": handler.options.max_message_size
            or self.router.settings.max_message_size
        }
        rate = handler.options.rate_limit or self.router.settings.rate_limit
        if rate is not None:
            limits["x-wsroute-rate-limit"] = {"messages": rate[0], "seconds": rate[1]}
        return limits

    def receive_operation(
        self, channel_id: str, address: str, receivers: list[Handler], gate: list[Handler]
    ) -> None:
        """The one receive operation of the channel: every message handler's messages.

        Their limits are the operation's when the handlers share them, else each message's.
        """
        refs: list[dict[str, str]] = []
        by_handler: list[tuple[Handler, list[dict[str, str]]]] = []
        for handler in receivers:
            annotation = handler.plan.interface.message
            # A message handler without a message parameter still consumes messages: any frame.
            message = Data if annotation is None else annotation
            own = self.add_messages(channel_id, message, "validation", name=handler.name)
            by_handler.append((handler, own))
            refs.extend(ref for ref in own if ref not in refs)
        security, each, note = self.merged_security(receivers, gate)
        if len(receivers) == 1:
            handler = receivers[0]
            first, body = _docstring(handler)
            summary = _plain(first) if first else f"A message to {handler.name}."
        else:
            names = ", ".join(h.name for h in receivers[:-1]) + f" or {receivers[-1].name}"
            summary = f"Messages for {names}: the first handler that accepts the connection takes them."
            lines = ["The route's message handlers, in the order they are tried:", ""]
            for handler, own in by_handler:
                first, _ = _docstring(handler)
                titles = ", ".join(f"`{t}`" for t in self.message_titles(channel_id, own))
                line = f"- `{handler.name}` takes {titles}"
                if handler in each:
                    line += f" ({each[handler]})"
                lines.append(f"{line}: {first}" if first else line)
            body = "\n".join(lines)
        if note:
            body = f"{body}\n\n{note}" if body else note
        operation = _operation(
            "receive", channel_id, f"Messages from clients on {address}", summary, body, refs, security
        )
        replies: list[dict[str, str]] = []
        for handler in receivers:
            reply = handler.plan.interface.reply
            if reply is not None and not _never(reply):
                for tp in _reply_types(reply):
                    added = self.add_messages(channel_id, tp, "serialization")
                    replies.extend(ref for ref in added if ref not in replies)
        if replies:
            # AsyncAPI 3's request/reply: a client that sends the message as a request (the
            # multiplex `meta` extension) gets the handler's return value back on the channel.
            operation["reply"] = {"channel": {"$ref": f"#/channels/{channel_id}"}, "messages": replies}
            titles = ", ".join(f"`{t}`" for t in self.message_titles(channel_id, replies))
            answer = (
                f"Sent as a request (`topic.request()` over rocket-multiplex), a message is answered "
                f"with {titles}: the handler's return value, to that client only."
            )
            described = operation.get("description")
            operation["description"] = f"{described}\n\n{answer}" if described else answer
        limits = [self.receive_limits(handler) for handler in receivers]
        if all(limit == limits[0] for limit in limits):
            operation.update(limits[0])
        else:
            messages: dict[str, Any] = self.channels[channel_id]["messages"]
            for (_, own), limit in zip(by_handler, limits, strict=True):
                for ref in own:
                    messages[ref["$ref"].rsplit("/", 1)[-1]].update(limit)
        self.operations[_unique(f"{channel_id}.receive", self.operations)] = operation

    def send_operation(
        self,
        channel_id: str,
        address: str,
        senders: list[tuple[Handler, list[Any]]],
        gate: list[Handler],
    ) -> None:
        """The one send operation of the channel: the union of what its handlers declare,
        its description saying which handler sends which message."""
        refs: list[dict[str, str]] = []
        security, each, note = self.merged_security([handler for handler, _ in senders], gate)
        lines = ["Which handler sends which message:", ""]
        for handler, sends in senders:
            own: list[dict[str, str]] = []
            for tp in sends:
                added = self.add_messages(channel_id, tp, "serialization")
                own.extend(ref for ref in added if ref not in own)
            refs.extend(ref for ref in own if ref not in refs)
            sent = ", ".join(f"`{t}`" for t in self.message_titles(channel_id, own))
            line = f"- **{handler.kind}** `{handler.name}` ({_EVENT[handler.kind]}): {sent}"
            lines.append(f"{line} ({each[handler]})" if handler in each else line)
        if note:
            lines += ["", note]
        titles = self.message_titles(channel_id, refs)
        listed = titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + f" or {titles[-1]}"
        summary = f"What the server sends on {address}: {listed}."
        operation = _operation(
            "send", channel_id, f"Messages to clients on {address}", summary, "\n".join(lines), refs, security
        )
        self.operations[_unique(f"{channel_id}.send", self.operations)] = operation

    # --- security -----------------------------------------------------------------------

    def security(self, handler: Handler, gate: list[Handler]) -> list[dict[str, str]]:
        """References to the schemes `handler` needs, and those of the join handlers that
        gate the connection on its route (they run at the handshake).

        A scheme reached through ``Security(..., scopes=…)`` needs those scopes; reached
        several times, the union of them (as FastAPI merges them in OpenAPI). AsyncAPI
        states the scopes an operation needs in the scheme object's ``scopes``, so an
        OAuth2 or OpenID Connect scheme that needs some is referenced as a copy listing
        them, keyed by the scheme's name and its scopes.
        """
        needed: list[tuple[str, dict[str, Any], list[str]]] = []
        for owner in [handler, *(h for h in gate if h is not handler)]:
            for requirement in owner.plan.interface.security:
                named = self.scheme_of(requirement)
                if named is None:
                    continue
                name, spec = named
                scopes = list(requirement.scopes)
                known = next((n for n in needed if n[0] == name and n[1] == spec), None)
                if known is None:
                    needed.append((name, spec, list(dict.fromkeys(scopes))))
                else:
                    known[2].extend(scope for scope in scopes if scope not in known[2])
        refs: list[dict[str, str]] = []
        for name, spec, scopes in needed:
            if scopes and spec.get("type") in ("oauth2", "openIdConnect"):
                name, spec = ".".join([name, *scopes]), {**spec, "scopes": scopes}
            ref = {"$ref": f"#/components/securitySchemes/{self.register_scheme(name, spec)}"}
            if ref not in refs:
                refs.append(ref)
        return refs

    def scheme_of(self, requirement: SecurityRequirement) -> tuple[str, dict[str, Any]] | None:
        """(name, AsyncAPI scheme) of `requirement`; None for a FastAPI model it cannot convert."""
        scheme = requirement.scheme
        if isinstance(scheme, SecurityBase):
            spec = from_fastapi(scheme.model, base_url=self.http_base)
            return None if spec is None else (requirement.name, spec)
        return scheme.named(requirement.name)

    def register_scheme(self, name: str, spec: dict[str, Any]) -> str:
        """The components key of `spec`: its `name`, suffixed if another scheme has it."""
        key = base = _key(name)
        n = 1
        while key in self.security_schemes and self.security_schemes[key] != spec:
            n += 1
            key = f"{base}_{n}"
        self.security_schemes[key] = spec
        return key
