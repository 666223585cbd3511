"""Typed browser code from an app's AsyncAPI document: ``python -m wsroute typescript module:app``.

The input is the AsyncAPI document (`wsroute.asyncapi.asyncapi_for_app`), the one description
of the routes; the output is one module for the browser, in either of two flavors:

* ``"ts"``: a TypeScript module, for apps with a build step;
* ``"js"``: the same module as plain JavaScript with JSDoc types (``// @ts-check``), for apps
  that serve their files as they are: browsers run it, editors and ``tsc --checkJs`` read
  its types.

It holds a type per schema of ``components.schemas`` (an ``interface`` per object model, a
``type`` alias for the rest) and, per channel, an object named after its address
(``/rooms/{room}`` gives ``rooms``) whose ``open(params, options?)`` (``open(options?)``
without parameters) subscribes a topic of the shared multiplexed socket (a
``MultiplexWebSocket`` of ``multiplex.js``) and returns a typed `Topic`: ``send`` takes what
the channel's ``receive`` operations accept, ``onMessage`` listeners get what its ``send``
operations send, and ``request`` (only where a receive operation has a ``reply``) resolves
with the reply. Models travel as JSON (``JSON.stringify`` out, ``JSON.parse`` in), text frames
as strings, binary frames as they are.

JSON Schema maps to TypeScript as follows: objects to object types (``required`` properties
plain, the others optional; ``additionalProperties`` to an index signature), ``const`` and
``enum`` to literal types, ``oneOf``/``anyOf`` and type lists to unions (a ``discriminator``
needs nothing more: TypeScript narrows a union by the literal type of its tag), ``allOf`` to
an intersection, arrays and tuples, ``$ref`` to the model's name, strings, numbers and
booleans to theirs, ``null`` (and ``nullable``) to ``null``. A single-value tag with that value
as its ``default`` (pydantic's ``type: Literal["said"] = "said"``) counts as required, as the
server always sends it. Anything else is ``unknown``. A binary frame is ``ArrayBuffer |
ArrayBufferView`` to send (``MultiplexWebSocket`` refuses a ``Blob``: reading one is
asynchronous and would reorder messages) and ``ArrayBuffer | Blob`` received (per
``binaryType``); a ``bytes`` field inside a JSON model is a string.

The output depends only on the document and the options, so regenerating an unchanged app
gives the same text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["DEFAULT_CLIENT_MODULE", "Flavor", "schema_declaration", "schema_type", "typescript_module"]

DEFAULT_CLIENT_MODULE = "/wsroute/multiplex.js"
"""Where the generated module imports ``MultiplexWebSocket`` from: the path apps serve it at."""

Flavor = Literal["ts", "js"]
"""``"ts"``: a TypeScript module; ``"js"``: an ES module with JSDoc types."""

_SCHEMA_REF = "#/components/schemas/"
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_JS_RESERVED = """arguments await break case catch class const continue debugger default delete do
else enum eval export extends false finally for function if implements import in instanceof
interface let new null package private protected public return static super switch this throw true
try typeof var void while with yield"""
# Names the generated module uses itself, or refers to as globals: a model named so is renamed.
_OWN_TYPES = """Array ArrayBuffer ArrayBufferView Blob Decoding Encoding JSON MessageEvent MultiplexOptions
MultiplexWebSocket Object Promise Record RequestOptions RequestTopic String Topic URLSearchParams any
bigint boolean never null number object string symbol undefined unknown void"""
_OWN_VALUES = "MultiplexWebSocket decode encode openRequestTopic openTopic withQuery"
_RESERVED_WORDS = frozenset(_JS_RESERVED.split())
_TAKEN_TYPES = frozenset(_OWN_TYPES.split())
_TAKEN_VALUES = frozenset(_OWN_VALUES.split())
_SEND_BINARY = ("ArrayBuffer", "ArrayBufferView")
_RECEIVED_BINARY = ("ArrayBuffer", "Blob")
_RAW_RECEIVED = "string | ArrayBuffer | Blob"
_WRAP = 100
_ALIASES = ("Send", "Message", "Reply")

_Frame = Literal["json", "text", "binary"]
_Type = tuple[str, bool]
"""A TypeScript type expression, and whether it needs parentheses inside `[]` or `&`."""


# --- JSON Schema to TypeScript -----------------------------------------------------------


def schema_type(schema: Any, names: Mapping[str, str] | None = None) -> str:
    """The TypeScript type expression of a JSON Schema.

    `names` maps the keys of ``components.schemas`` to the names their types have (by
    default, the key made a valid identifier); a ``$ref`` to one of them is that name.
    """
    return _Converter(names).type(schema)[0]


def schema_declaration(
    name: str, schema: Any, names: Mapping[str, str] | None = None, flavor: Flavor = "ts"
) -> str:
    """The exported declaration of type `name` for `schema`, with its doc comment.

    An object schema is an ``interface`` (``"ts"``) or an ``@typedef`` with ``@property``
    tags (``"js"``); any other schema a ``type`` alias (an ``@typedef`` of its type).
    """
    return _Converter(names).declaration(name, schema, flavor)


@dataclass
class _Property:
    key: str
    type: str
    optional: bool
    doc: list[str]


@dataclass
class _Object:
    properties: list[_Property]
    index: str | None  # the type of an index signature, if any


def _literal(value: Any) -> str | None:
    """A literal type for a JSON primitive; None for an array or object."""
    if value is None or isinstance(value, bool | int | float | str):
        return json.dumps(value, ensure_ascii=False)
    return None


def _literal_values(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _union(types: Iterable[_Type]) -> _Type:
    texts = list(dict.fromkeys(text for text, _ in types))
    if not texts:
        return ("never", False)
    if "unknown" in texts:
        return ("unknown", False)
    return (texts[0], False) if len(texts) == 1 else (" | ".join(texts), True)


def _atom(tp: _Type) -> str:
    return f"({tp[0]})" if tp[1] else tp[0]


def _key(name: str) -> str:
    return name if _IDENTIFIER.match(name) else json.dumps(name, ensure_ascii=False)


def _identifier(text: str, fallback: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_$]", "_", text)
    if not name:
        return fallback
    return f"_{name}" if name[0].isdigit() else name


def _default_names(keys: Iterable[str]) -> dict[str, str]:
    """A TypeScript name per schema key: its own where free, else renamed. Every free own
    name is reserved before any rename, so that a rename (``Topic`` → ``TopicModel``) never
    takes the name of another model (an app's own ``TopicModel``)."""
    keys = list(keys)
    own = {key: _identifier(key, "Model") for key in keys}
    names: dict[str, str] = {}
    taken = set(_TAKEN_TYPES)
    for key in keys:
        name = own[key]
        if name not in taken and name not in _RESERVED_WORDS:
            names[key] = name
            taken.add(name)
    for key in keys:
        if key not in names:
            names[key] = _unique(own[key] + "Model", taken)
    return names


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}{n}", n + 1
    taken.add(candidate)
    return candidate


def _comment_lines(text: str) -> list[str]:
    """Doc comment lines for `text` (its blank edges dropped; `_doc` defuses ``*/``)."""
    return [line.rstrip() for line in text.strip().splitlines()]


def _doc(lines: Sequence[str], indent: str = "") -> str:
    """A ``/** */`` comment of `lines` (nothing for none), on one line if it fits; a ``*/``
    in a line (a glob in a docstring) is defused here, whoever wrote the line."""
    if not lines:
        return ""
    lines = [line.replace("*/", "*\\/") for line in lines]
    if len(lines) == 1 and len(indent) + len(lines[0]) + 7 <= _WRAP:
        return f"{indent}/** {lines[0]} */\n"
    body = "".join(f"{indent} * {line}".rstrip() + "\n" for line in lines)
    return f"{indent}/**\n{body}{indent} */\n"


class _Converter:
    """JSON Schema to TypeScript types, `$ref`s to the names of `names`."""

    def __init__(self, names: Mapping[str, str] | None) -> None:
        self.names = names

    def ref(self, ref: str) -> _Type:
        if not ref.startswith(_SCHEMA_REF):
            return ("unknown", False)
        key = ref[len(_SCHEMA_REF) :].replace("~1", "/").replace("~0", "~")
        if self.names is None:
            return (_default_names([key])[key], False)
        name = self.names.get(key)
        return (name, False) if name else ("unknown", False)

    def type(self, schema: Any) -> _Type:
        if schema is True or schema == {}:
            return ("unknown", False)
        if schema is False:
            return ("never", False)
        if not isinstance(schema, Mapping):
            return ("unknown", False)
        tp = self._type(schema)
        if schema.get("nullable") is True and tp[0] not in ("unknown", "null"):
            tp = _union([tp, ("null", False)])
        return tp

    def _type(self, schema: Mapping[str, Any]) -> _Type:
        if isinstance(schema.get("$ref"), str):
            return self.ref(schema["$ref"])
        values = _literal_values(schema)
        if values is not None:
            literals = [_literal(value) for value in values]
            if None in literals:
                return ("unknown", False)
            return _union((text, False) for text in literals if text is not None)
        for combinator in ("oneOf", "anyOf"):
            members = schema.get(combinator)
            if isinstance(members, list) and members:
                return _union(self.type(member) for member in members)
        members = schema.get("allOf")
        if isinstance(members, list) and members:
            parts = list(dict.fromkeys(_atom(self.type(member)) for member in members))
            parts = [part for part in parts if part != "unknown"] or ["unknown"]
            return (parts[0], False) if len(parts) == 1 else (" & ".join(parts), True)
        kind = schema.get("type")
        if isinstance(kind, list):
            return _union(self._type({**schema, "type": each}) for each in kind)
        if kind == "null":
            return ("null", False)
        if kind == "string":
            return ("string", False)
        if kind in ("integer", "number"):
            return ("number", False)
        if kind == "boolean":
            return ("boolean", False)
        if kind == "array":
            return self.array(schema)
        if kind == "object" or (kind is None and isinstance(schema.get("properties"), Mapping)):
            return (self.inline_object(self.object(schema)), False)
        return ("unknown", False)

    def array(self, schema: Mapping[str, Any]) -> _Type:
        items = schema.get("items")
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list):
            parts = [self.type(item)[0] for item in prefix]
            if items is not False and schema.get("maxItems") != len(prefix):
                parts.append(f"...{_atom(self.type(items if items is not None else True))}[]")
            return (f"[{', '.join(parts)}]", False)
        return (f"{_atom(self.type(items if items is not None else True))}[]", False)

    def object(self, schema: Mapping[str, Any]) -> _Object:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = schema.get("required")
        required = set(required) if isinstance(required, list) else set()
        found = []
        for name, prop in properties.items():
            optional = name not in required and not _is_tag(prop)
            found.append(_Property(_key(str(name)), self.type(prop)[0], optional, _property_doc(prop)))
        extra = schema.get("additionalProperties")
        index: str | None = None
        if extra is False:
            pass
        elif not found:
            index = self.type(extra if extra is not None else True)[0]
        elif extra is not None:
            index = "unknown"  # property types must fit the index signature's
        return _Object(found, index)

    def inline_object(self, shape: _Object) -> str:
        if not shape.properties:
            return f"Record<string, {shape.index or 'never'}>"
        members = [f"{p.key}{'?' if p.optional else ''}: {p.type}" for p in shape.properties]
        if shape.index:
            members.append(f"[key: string]: {shape.index}")
        return "{ " + "; ".join(members) + " }"

    def declaration(self, name: str, schema: Any, flavor: Flavor) -> str:
        doc = _comment_lines(schema.get("description", "")) if isinstance(schema, Mapping) else []
        shape = self.object(schema) if _is_object(schema) else None
        if shape is not None and shape.properties:
            if flavor == "ts":
                return _doc(doc) + _interface(name, shape)
            if shape.index is None and all(_IDENTIFIER.match(p.key) for p in shape.properties):
                tags = [f"@typedef {{object}} {name}"]
                for p in shape.properties:
                    key = f"[{p.key}]" if p.optional else p.key
                    lines = [line for line in p.doc if not line.startswith("@")]
                    tags.append(f"@property {{{p.type}}} {key}{' ' + lines[0] if lines else ''}")
                    tags.extend(f"  {line}" for line in lines[1:])
                return _doc([*doc, *tags])
            return _doc([*doc, f"@typedef {{{self.inline_object(shape)}}} {name}"])
        text = self.inline_object(shape) if shape is not None else self.type(schema)[0]
        if flavor == "js":
            return _doc([*doc, f"@typedef {{{text}}} {name}"])
        return _doc(doc) + _alias(name, text)


def _is_object(schema: Any) -> bool:
    if not isinstance(schema, Mapping) or any(
        key in schema for key in ("$ref", "const", "enum", "oneOf", "anyOf", "allOf")
    ):
        return False
    kind = schema.get("type")
    return kind == "object" or (kind is None and isinstance(schema.get("properties"), Mapping))


def _is_tag(prop: Any) -> bool:
    """A single-value literal defaulting to its value: always present, whatever ``required``."""
    if not isinstance(prop, Mapping) or "default" not in prop:
        return False
    values = _literal_values(prop)
    return values is not None and len(values) == 1 and values[0] == prop["default"]


def _property_doc(prop: Any) -> list[str]:
    if not isinstance(prop, Mapping):
        return []
    lines = _comment_lines(str(prop.get("description", "")))
    fmt = prop.get("format")
    if isinstance(fmt, str) and fmt != "binary":
        lines.append(f"Format: {fmt}.")
    if "default" in prop and _literal_values(prop) is None:
        default = json.dumps(prop["default"], ensure_ascii=False)
        if len(default) <= 60:
            lines.append(f"@default {default}")
    if prop.get("deprecated") is True:
        lines.append("@deprecated")
    return lines


def _interface(name: str, shape: _Object) -> str:
    lines = [f"export interface {name} {{\n"]
    for p in shape.properties:
        lines.append(_doc(p.doc, "  "))
        lines.append(f"  {p.key}{'?' if p.optional else ''}: {p.type};\n")
    if shape.index:
        lines.append(f"  [key: string]: {shape.index};\n")
    lines.append("}\n")
    return "".join(lines)


def _alias(name: str, text: str) -> str:
    line = f"export type {name} = {text};\n"
    if len(line) <= _WRAP or " | " not in text or _nested(text):
        return line
    members = "".join(f"\n  | {member}" for member in text.split(" | "))
    return f"export type {name} ={members};\n"


def _nested(text: str) -> bool:
    """Whether `text` has brackets or strings: splitting it at ``|`` is not safe then."""
    return any(char in text for char in "({[<\"'")


# --- the document's routes ---------------------------------------------------------------


@dataclass
class _Direction:
    """The messages of one direction of a channel: their type, and how values travel."""

    type: str
    mode: str


@dataclass
class _Param:
    name: str
    type: str
    optional: bool
    doc: str
    where: Literal["path", "query"]


@dataclass
class _Route:
    name: str
    type_prefix: str
    address: str
    doc: str
    params: list[_Param]
    send: _Direction
    receive: _Direction
    reply: _Direction | None
    summaries: list[str]  # of its receive operations


def _pointer(document: Mapping[str, Any], ref: str) -> Any:
    """The value at a local JSON Pointer (``#/channels/x/messages/y``); None if missing."""
    if not ref.startswith("#/"):
        return None
    value: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _resolve(document: Mapping[str, Any], value: Any) -> Any:
    for _ in range(16):
        if not (isinstance(value, Mapping) and isinstance(value.get("$ref"), str)):
            return value
        value = _pointer(document, value["$ref"])
    return None


def _frame(document: Mapping[str, Any], message: Mapping[str, Any]) -> _Frame:
    content = str(message.get("contentType") or document.get("defaultContentType") or "application/json")
    content = content.split(";")[0].strip().lower()
    if content == "application/json" or content.endswith("+json"):
        return "json"
    if content.startswith("text/"):
        return "text"
    if content == "application/octet-stream":
        return "binary"
    payload = message.get("payload")
    if isinstance(payload, Mapping) and payload.get("format") == "binary":
        return "binary"
    return "json"


def _messages(document: Mapping[str, Any], refs: Any) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for ref in refs if isinstance(refs, list) else []:
        message = _resolve(document, ref)
        if isinstance(message, Mapping) and all(message is not seen for seen in found):
            found.append(message)
    return found


def _sent(
    document: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], convert: _Converter
) -> _Direction:
    """What a client sends: JSON values, strings for text frames, buffers for binary ones."""
    frames = [(_frame(document, message), message) for message in messages]
    kinds = {kind for kind, _ in frames}
    types: list[_Type] = []
    for kind, message in frames:
        if kind == "binary":
            types.extend((name, False) for name in _SEND_BINARY)
        else:
            types.append(convert.type(message.get("payload", True)))
    mode = ("json-or-text" if "text" in kinds else "json") if "json" in kinds else "raw"
    return _Direction(_union(types)[0], mode)


def _received(
    document: Mapping[str, Any], messages: Sequence[Mapping[str, Any]], convert: _Converter
) -> _Direction:
    """What a client receives: parsed JSON unless text frames come too (then strings)."""
    frames = [(_frame(document, message), message) for message in messages]
    kinds = {kind for kind, _ in frames}
    parse = "json" in kinds and "text" not in kinds
    types: list[_Type] = []
    for kind, message in frames:
        if kind == "binary":
            types.extend((name, False) for name in _RECEIVED_BINARY)
        elif kind == "json" and parse:
            types.append(convert.type(message.get("payload", True)))
        elif kind == "text" and "enum" in message.get("payload", {}):
            types.append(convert.type(message["payload"]))  # a Literal of strings, sent raw
        else:
            types.append(("string", False))
    return _Direction(_union(types)[0], "json" if parse else "raw")


def _words(text: str) -> list[str]:
    return [word for word in re.split(r"[^A-Za-z0-9]+", text) if word]


def _route_name(address: str, params: Sequence[str], taken: set[str]) -> str:
    """`/rooms/{room}` → ``rooms``; `/api/chat-rooms` → ``apiChatRooms``; unique, valid."""
    static = re.sub(r"\{[^}]*\}", "/", address)
    words = _words(static)
    name = (words[0].lower() + "".join(w[:1].upper() + w[1:] for w in words[1:])) if words else "root"
    if name[0].isdigit():
        name = f"route{name}"
    if name in _RESERVED_WORDS or name in _TAKEN_VALUES:
        name += "Route"
    if name in taken and params:
        name += "By" + "And".join("".join(w[:1].upper() + w[1:] for w in _words(p)) for p in params)
    return _unique(name, taken)


def _type_prefix(base: str, taken: set[str]) -> str:
    """``Rooms`` for the types ``RoomsSend``, ``RoomsMessage`` and ``RoomsReply``, none taken."""
    prefix, n = base, 2
    while any(f"{prefix}{suffix}" in taken for suffix in _ALIASES):
        prefix, n = f"{base}{n}", n + 1
    taken.update(f"{prefix}{suffix}" for suffix in _ALIASES)
    return prefix


def _param_type(parameter: Any) -> str:
    values = parameter.get("enum") if isinstance(parameter, Mapping) else None
    if isinstance(values, list) and values:
        return " | ".join(json.dumps(str(value), ensure_ascii=False) for value in values)
    return "string"


def _operations(document: Mapping[str, Any]) -> dict[str, dict[str, list[Mapping[str, Any]]]]:
    """Each channel's operations by action (``receive``, ``send``), however many of each."""
    channels = document.get("channels")
    operations = document.get("operations")
    found: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for operation in (operations if isinstance(operations, Mapping) else {}).values():
        if not isinstance(operation, Mapping) or operation.get("action") not in ("receive", "send"):
            continue
        ref = str((operation.get("channel") or {}).get("$ref", ""))
        channel_id = ref.removeprefix("#/channels/").replace("~1", "/").replace("~0", "~")
        if isinstance(channels, Mapping) and channel_id in channels:
            by_action = found.setdefault(channel_id, {"receive": [], "send": []})
            by_action[operation["action"]].append(operation)
    return found


def _path_params(address: str, channel: Mapping[str, Any]) -> list[_Param]:
    """The address's parameters, in order, typed by the channel's ``enum`` if any."""
    declared = channel.get("parameters")
    declared = declared if isinstance(declared, Mapping) else {}
    params = []
    for name in dict.fromkeys(re.findall(r"\{([^}]+)\}", address)):
        parameter = declared.get(name)
        parameter = parameter if isinstance(parameter, Mapping) else {}
        doc = str(parameter.get("description", ""))
        params.append(_Param(name, _param_type(parameter), False, doc, "path"))
    return params


def _query_params(channel: Mapping[str, Any], convert: _Converter, path: set[str]) -> list[_Param]:
    """The handshake's query parameters (the channel's ``ws`` binding), after the path's."""
    bindings = channel.get("bindings")
    ws = bindings.get("ws") if isinstance(bindings, Mapping) else None
    query = ws.get("query") if isinstance(ws, Mapping) else None
    if not isinstance(query, Mapping):
        return []
    shape = convert.object(query)
    required = query.get("required")
    required = set(required) if isinstance(required, list) else set()
    raw_names = list((query.get("properties") or {}).keys())
    found = []
    for raw, prop in zip(raw_names, shape.properties, strict=True):
        if raw in path:
            continue  # the path's wins
        schema = query["properties"][raw]
        text = " ".join(line for line in prop.doc if not line.startswith("@"))
        if isinstance(schema, Mapping) and "default" in schema:
            text += f" Default: {json.dumps(schema['default'], ensure_ascii=False)}."
        found.append(_Param(raw, prop.type, raw not in required, text.strip(), "query"))
    return found


def _routes(document: Mapping[str, Any], convert: _Converter, taken_types: set[str]) -> list[_Route]:
    """A route per channel, in the document's order."""
    channels = document.get("channels")
    operations = _operations(document)
    taken_values: set[str] = set()
    routes = []
    for channel_id, channel in (channels if isinstance(channels, Mapping) else {}).items():
        if not isinstance(channel, Mapping):
            continue
        address = str(channel.get("address") or channel_id)
        params = _path_params(address, channel)
        path_names = [param.name for param in params]
        params += _query_params(channel, convert, set(path_names))
        name = _route_name(address, path_names, taken_values)
        ins = operations.get(channel_id, {}).get("receive", [])
        outs = operations.get(channel_id, {}).get("send", [])
        incoming = _messages(document, [ref for op in ins for ref in op.get("messages", [])])
        outgoing = _messages(document, [ref for op in outs for ref in op.get("messages", [])])
        replies = [op["reply"] for op in ins if isinstance(op.get("reply"), Mapping)]
        reply = None
        if replies and all(isinstance(r.get("messages"), list) for r in replies):
            reply_messages = _messages(document, [ref for r in replies for ref in r["messages"]])
            reply = _received(document, reply_messages, convert)
        elif replies:  # a reply without messages may be any: as the client resolves it
            reply = _Direction(_RAW_RECEIVED, "raw")
        routes.append(
            _Route(
                name=name,
                type_prefix=_type_prefix(name[:1].upper() + name[1:], taken_types),
                address=address,
                doc=str(channel.get("description") or channel.get("summary") or ""),
                params=params,
                send=_sent(document, incoming, convert),
                receive=_received(document, outgoing, convert),
                reply=reply,
                summaries=[str(op["summary"]) for op in ins if op.get("summary")],
            )
        )
    return routes


# --- the module ----------------------------------------------------------------------------


_TS_RUNTIME = """
/** How values are sent: as JSON; strings as they are and the rest as JSON; all as they are. */
type Encoding = "json" | "json-or-text" | "raw";
/** How messages are received: text as JSON, or as `MessageEvent.data` is. */
type Decoding = "json" | "raw";

/** A topic of a route, on the origin's shared socket: typed messages in and out. */
export interface Topic<In, Out> {
  /** The topic's `MultiplexWebSocket`: `readyState`, the `open`/`close`/`error` events, `socket`. */
  readonly socket: MultiplexWebSocket;
  /** Send a message; buffered until the topic is open. */
  send(data: In): void;
  /** Call `listener` with each message the server sends; returns a function that removes it. */
  onMessage(listener: (data: Out, event: MessageEvent) => void): () => void;
  /** Close this topic only (the shared socket stays open for the others). */
  close(code?: number, reason?: string): void;
}

function encode(how: Encoding, data: unknown): string | ArrayBuffer | ArrayBufferView {
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data;
  if (how === "raw" || (how === "json-or-text" && typeof data === "string")) return String(data);
  return JSON.stringify(data);
}

function decode(how: Decoding, data: unknown): unknown {
  if (how !== "json" || typeof data !== "string") return data;
  // A handler that returns None replies with an empty frame, which no JSON text is.
  return data === "" ? null : JSON.parse(data);
}
"""

_TS_OPEN = """
function openTopic<In, Out>(
  url: string,
  codec: { send: Encoding; receive: Decoding },
  options?: MultiplexOptions,
): Topic<In, Out> {
  const socket = new MultiplexWebSocket(url, options);
  return {
    socket,
    send: (data) => socket.send(encode(codec.send, data)),
    onMessage(listener) {
      const handle = (event: MessageEvent) => listener(decode(codec.receive, event.data) as Out, event);
      socket.addEventListener("message", handle);
      return () => socket.removeEventListener("message", handle);
    },
    close: (code, reason) => socket.close(code, reason),
  };
}
"""

_TS_OPEN_REQUEST = """
/** A topic whose handler answers: `request` resolves with the reply, or rejects with a `RequestError`. */
export interface RequestTopic<In, Out, Reply> extends Topic<In, Out> {
  request(data: In, options?: RequestOptions): Promise<Reply>;
}

function openRequestTopic<In, Out, Reply>(
  url: string,
  codec: { send: Encoding; receive: Decoding; reply: Decoding },
  options?: MultiplexOptions,
): RequestTopic<In, Out, Reply> {
  const topic = openTopic<In, Out>(url, codec, options);
  return {
    ...topic,
    async request(data, requestOptions) {
      const reply = await topic.socket.request(encode(codec.send, data), requestOptions);
      return decode(codec.reply, reply) as Reply;
    },
  };
}
"""

_TS_QUERY = """
function withQuery(path: string, query: Record<string, unknown>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== undefined && item !== null) search.append(name, String(item));
    }
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}
"""

_JS_RUNTIME = """
/** @typedef {"json" | "json-or-text" | "raw"} Encoding How values are sent. */
/** @typedef {"json" | "raw"} Decoding How messages are received. */

/**
 * A topic of a route, on the origin's shared socket: typed messages in and out.
 * @template In, Out
 * @typedef {object} Topic
 * @property {MultiplexWebSocket} socket The topic's `MultiplexWebSocket`: `readyState`, events, `socket`.
 * @property {(data: In) => void} send Send a message; buffered until the topic is open.
 * @property {(listener: (data: Out, event: MessageEvent) => void) => () => void} onMessage
 *   Call `listener` with each message the server sends; returns a function that removes it.
 * @property {(code?: number, reason?: string) => void} close Close this topic only.
 */

/**
 * @param {Encoding} how
 * @param {unknown} data
 * @returns {string | ArrayBuffer | ArrayBufferView}
 */
function encode(how, data) {
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data;
  if (how === "raw" || (how === "json-or-text" && typeof data === "string")) return String(data);
  return JSON.stringify(data);
}

/**
 * @param {Decoding} how
 * @param {unknown} data
 * @returns {unknown}
 */
function decode(how, data) {
  if (how !== "json" || typeof data !== "string") return data;
  // A handler that returns None replies with an empty frame, which no JSON text is.
  return data === "" ? null : JSON.parse(data);
}
"""

_JS_OPEN = """
/**
 * @template In, Out
 * @param {string} url
 * @param {{ send: Encoding, receive: Decoding }} codec
 * @param {MultiplexOptions} [options]
 * @returns {Topic<In, Out>}
 */
function openTopic(url, codec, options) {
  const socket = new MultiplexWebSocket(url, options);
  return {
    socket,
    send: (data) => socket.send(encode(codec.send, data)),
    onMessage(listener) {
      /** @param {MessageEvent} event */
      const handle = (event) => listener(/** @type {Out} */ (decode(codec.receive, event.data)), event);
      socket.addEventListener("message", handle);
      return () => socket.removeEventListener("message", handle);
    },
    close: (code, reason) => socket.close(code, reason),
  };
}
"""

_JS_OPEN_REQUEST = """
/**
 * A topic whose handler answers: `request` resolves with the reply, or rejects with a `RequestError`.
 * @template In, Out, Reply
 * @typedef {Topic<In, Out> & { request: (data: In, options?: RequestOptions) => Promise<Reply> }}
 *   RequestTopic
 */

/**
 * @template In, Out, Reply
 * @param {string} url
 * @param {{ send: Encoding, receive: Decoding, reply: Decoding }} codec
 * @param {MultiplexOptions} [options]
 * @returns {RequestTopic<In, Out, Reply>}
 */
function openRequestTopic(url, codec, options) {
  /** @type {Topic<In, Out>} */
  const topic = openTopic(url, codec, options);
  return {
    ...topic,
    async request(data, requestOptions) {
      const reply = await topic.socket.request(encode(codec.send, data), requestOptions);
      return /** @type {Reply} */ (decode(codec.reply, reply));
    },
  };
}
"""

_JS_QUERY = """
/**
 * @param {string} path
 * @param {Record<string, unknown>} query
 * @returns {string}
 */
function withQuery(path, query) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== undefined && item !== null) search.append(name, String(item));
    }
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}
"""


def _section(title: str) -> str:
    return f"// --- {title} ".ljust(_WRAP - 1, "-") + "\n"


def _access(name: str) -> str:
    return f"params.{name}" if _IDENTIFIER.match(name) else f"params[{json.dumps(name)}]"


def _url(route: _Route) -> str:
    """The expression of the topic's URL: the address, each path parameter percent-encoded."""
    path_params = {p.name for p in route.params if p.where == "path"}
    if not path_params:
        path = json.dumps(route.address, ensure_ascii=False)
    else:
        parts = re.split(r"\{([^}]+)\}", route.address)
        text = []
        for index, part in enumerate(parts):
            if index % 2:
                text.append(f"${{encodeURIComponent({_access(part)})}}")
            else:
                text.append(part.replace("\\", "\\\\").replace("`", "\\`").replace("${", "\\${"))
        path = "`" + "".join(text) + "`"
    query = [p for p in route.params if p.where == "query"]
    if not query:
        return path
    fields = ", ".join(f"{_key(p.name)}: {_access(p.name)}" for p in query)
    return f"withQuery({path}, {{ {fields} }})"


def _params_type(route: _Route) -> str:
    fields = [f"{_key(p.name)}{'?' if p.optional else ''}: {p.type}" for p in route.params]
    return "{ " + "; ".join(fields) + " }"


def _route_aliases(route: _Route, flavor: Flavor) -> list[str]:
    """The route's named types: ``RoomsSend``, ``RoomsMessage`` and (with a reply) ``RoomsReply``."""
    p, where = route.type_prefix, f"`{route.address}`"
    aliases = [
        (f"{p}Send", route.send.type, [f"What a client sends on {where}.", *route.summaries]),
        (f"{p}Message", route.receive.type, [f"What the server sends on {where}."]),
    ]
    if route.reply is not None:
        aliases.append((f"{p}Reply", route.reply.type, [f"What `request()` on {where} resolves with."]))
    if flavor == "ts":
        return [_doc(doc) + _alias(name, text) for name, text, doc in aliases]
    return [_doc([*doc, f"@typedef {{{text}}} {name}"]) for name, text, doc in aliases]


def _open_doc(route: _Route, flavor: Flavor, topic: str) -> list[str]:
    """The doc comment of ``open()``: JSDoc tags, typed in the ``"js"`` flavor."""
    js = flavor == "js"
    doc = [f"Open a topic of `{route.address}` on the origin's shared socket."]
    if route.params:
        path = [param for param in route.params if param.where == "path"]
        what = "the path parameters" if len(path) == len(route.params) else "the parameters"
        what += ", each percent-encoded" if path else ""
        optional = all(param.optional for param in route.params)
        doc.append(
            f"@param {{object}} {'[params]' if optional else 'params'} {what}"
            if js
            else f"@param params {what}"
        )
        plain = all(_IDENTIFIER.match(param.name) for param in route.params)
        if js and not plain:
            # JSDoc's `params.page-size` would name `params.page`: type the object whole.
            doc[-1] = doc[-1].replace("{object}", f"{{{_params_type(route)}}}", 1)
        for param in route.params:
            text = param.doc or ("a query parameter" if param.where == "query" else "")
            name = f"params.{param.name}" if plain else f"params[{json.dumps(param.name)}]"
            if js and not plain:
                doc.append(f"- `{name}`: {text}".rstrip(": "))
                continue
            if js:
                name = f"{{{param.type}}} {f'[{name}]' if param.optional else name}"
            doc.append(f"@param {name} {text}".rstrip())
    options = "{MultiplexOptions} [options]" if js else "options"
    doc.append(f"@param {options} the shared socket's options (only the origin's first topic sets them)")
    if js:
        doc.append(f"@returns {{{topic}}}")
    return doc


def _route_code(route: _Route, flavor: Flavor) -> str:
    """The route's types, then its object: ``address`` and ``open()``."""
    p = route.type_prefix
    modes = {"send": route.send.mode, "receive": route.receive.mode}
    if route.reply is not None:
        topic, opener = f"RequestTopic<{p}Send, {p}Message, {p}Reply>", "openRequestTopic"
        modes["reply"] = route.reply.mode
    else:
        topic, opener = f"Topic<{p}Send, {p}Message>", "openTopic"
    codec = "{ " + ", ".join(f'{key}: "{mode}"' for key, mode in modes.items()) + " }"
    args = []
    if route.params:
        default = " = {}" if all(param.optional for param in route.params) else ""
        args.append(f"params: {_params_type(route)}{default}" if flavor == "ts" else f"params{default}")
    args.append("options?: MultiplexOptions" if flavor == "ts" else "options")
    returns = f": {topic}" if flavor == "ts" else ""
    signature = f"  open({', '.join(args)}){returns}"
    if len(signature) + 2 > _WRAP:
        signature = "  open(\n" + "".join(f"    {arg},\n" for arg in args) + f"  ){returns}"
    body = f"    return {opener}({_url(route)}, {codec}, options);\n"
    if len(body) > _WRAP:
        body = f"    const url = {_url(route)};\n    return {opener}(url, {codec}, options);\n"
    route_object = (
        _doc(_comment_lines(route.doc) or [f"The route `{route.address}`."])
        + f"export const {route.name} = {{\n"
        + _doc(["The channel's address, its path parameters in braces."], "  ")
        + f"  address: {json.dumps(route.address, ensure_ascii=False)},\n"
        + _doc(_open_doc(route, flavor, topic), "  ")
        + f"{signature} {{\n{body}  }},\n}};\n"
    )
    return "\n".join([*_route_aliases(route, flavor), route_object])


def typescript_module(
    document: Mapping[str, Any],
    *,
    source: str | None = None,
    client_module: str = DEFAULT_CLIENT_MODULE,
    flavor: Flavor = "ts",
) -> str:
    """The browser module of an AsyncAPI document's routes, as text (see the module's doc).

    `source` names the app in the header (``"myapp.main:app"``); `client_module` is where
    the module imports ``MultiplexWebSocket`` from (`DEFAULT_CLIENT_MODULE`, the path apps
    serve it at); `flavor` is ``"ts"`` for TypeScript or ``"js"`` for JavaScript with JSDoc
    types.
    """
    schemas = document.get("components", {}).get("schemas", {})
    schemas = schemas if isinstance(schemas, Mapping) else {}
    keys = sorted(schemas)
    names = _default_names(keys)
    convert = _Converter(names)
    taken_types = set(_TAKEN_TYPES) | set(names.values())
    routes = _routes(document, convert, taken_types)
    replies = any(route.reply is not None for route in routes)
    queries = any(param.where == "query" for route in routes for param in route.params)

    info = document.get("info", {})
    title = f"{json.dumps(str(info.get('title', '')), ensure_ascii=False)} {info.get('version', '')}".strip()
    command = "python -m wsroute typescript " + (source or "module:app")
    if flavor == "js":
        command += " --js"
    if client_module != DEFAULT_CLIENT_MODULE:
        command += f" --client-module {client_module}"
    parts = ["// @ts-check\n"] if flavor == "js" else []
    origin = f"{source} ({title})" if source else title
    parts.append(
        f"// Generated by wsroute from the AsyncAPI document of {origin}.\n"
        f"// Do not edit: regenerate it with `{command}`.\n\n"
    )
    module = json.dumps(client_module, ensure_ascii=False)
    types = ["MultiplexOptions", *(["RequestOptions"] if replies else [])]
    parts.append(f"import {{ MultiplexWebSocket }} from {module};\n")
    if flavor == "ts":
        parts.append(f"import type {{ {', '.join(types)} }} from {module};\n")
    else:
        parts.append(f"/** @import {{ {', '.join(types)} }} from {module} */\n")
    if keys:
        parts.append("\n" + _section("Models"))
        for key in keys:
            parts.append("\n" + convert.declaration(names[key], schemas[key], flavor))
    if routes:
        parts.append("\n" + _section("Routes"))
        for route in routes:
            parts.append("\n" + _route_code(route, flavor))
    parts.append("\n" + _section("Runtime") + (_TS_RUNTIME if flavor == "ts" else _JS_RUNTIME))
    parts.append(_TS_OPEN if flavor == "ts" else _JS_OPEN)
    if replies:
        parts.append(_TS_OPEN_REQUEST if flavor == "ts" else _JS_OPEN_REQUEST)
    if queries:
        parts.append(_TS_QUERY if flavor == "ts" else _JS_QUERY)
    return "".join(parts)
