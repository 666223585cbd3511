"""The TypeScript generator (``wsroute/typescript.py``, ``python -m wsroute typescript``).

* the JSON Schema converter, on schemas: objects, optional and required fields, tags,
  ``Literal``/``Enum``, unions with and without a discriminator, nullable, arrays, tuples,
  ``additionalProperties``, ``$ref`` names, doc comments;
* the routes: names from addresses, how values travel (JSON, text, binary), ``request``
  only where a receive operation has a ``reply``, the current and the improved document
  shapes giving the same module;
* ``tsc`` (TypeScript pinned in tests/js/package.json): the modules generated for the chat
  example, a model zoo (tests/apps/typescript_zoo.py) and a hand-built document with replies,
  in both flavors, compile under ``--strict`` and more with tests/fixtures/typescript/usage.ts,
  against the real ``multiplex.d.ts``; tests/fixtures/typescript/wrong_send.ts fails on exactly
  its wrong lines; the chat's ``room.js`` checks against its generated ``chat-api.js``
  (``tsc -p examples/chat``), which is up to date;
* the command line: standard output, ``-o``, ``--js``, ``--client-module``.

Without node or the pinned TypeScript (``npm ci --prefix tests/js``) the ``tsc`` tests skip,
except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support import ci
from wsroute.__main__ import main
from wsroute.asyncapi import asyncapi_for_app
from wsroute.typescript import schema_declaration, schema_type, typescript_module

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps import typescript_zoo  # noqa: E402
from examples.chat.app import app as chat_app  # noqa: E402

JS_TESTS = ROOT / "tests" / "js"
TYPESCRIPT = JS_TESTS / "node_modules" / "typescript"
FIXTURES = ROOT / "tests" / "fixtures" / "typescript"
CHAT_API = ROOT / "examples" / "chat" / "static" / "chat-api.js"
CHAT_SOURCE = "examples.chat.app:app"
INSTALL = "npm ci --prefix tests/js"

# Stricter than --strict, as a careful user's project may be: the generated code must not care.
STRICT_OPTIONS = {
    "strict": True,
    "noEmit": True,
    "allowJs": True,
    "checkJs": False,  # the generated JS says `// @ts-check` itself
    "target": "es2022",
    "lib": ["es2022", "dom", "dom.iterable"],
    "module": "esnext",
    "moduleResolution": "bundler",
    "types": [],
    "noUnusedLocals": True,
    "noUnusedParameters": True,
    "noImplicitReturns": True,
    "noImplicitOverride": True,
    "noUncheckedIndexedAccess": True,
    "noPropertyAccessFromIndexSignature": True,
    "exactOptionalPropertyTypes": True,
    "verbatimModuleSyntax": True,
    "isolatedModules": True,
    # The generated modules import the client from where apps serve it.
    "paths": {"/wsroute/multiplex.js": [str(ROOT / "wsroute" / "static" / "multiplex.d.ts")]},
}


# --- the converter -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, "string"),
        ({"type": "string", "format": "date-time"}, "string"),
        ({"type": "string", "format": "binary"}, "string"),  # bytes inside JSON travel as text
        ({"type": "integer", "minimum": 0}, "number"),
        ({"type": "number"}, "number"),
        ({"type": "boolean"}, "boolean"),
        ({"type": "null"}, "null"),
        ({}, "unknown"),
        (True, "unknown"),
        (False, "never"),
        ({"const": "said", "type": "string"}, '"said"'),
        ({"const": 3}, "3"),
        ({"enum": ["red", "green"], "type": "string"}, '"red" | "green"'),
        ({"enum": [1, 2, None]}, "1 | 2 | null"),
        ({"enum": [{"a": 1}]}, "unknown"),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "string | null"),
        ({"type": ["integer", "null"]}, "number | null"),
        ({"type": "string", "nullable": True}, "string | null"),
        ({"type": "array", "items": {"type": "string"}}, "string[]"),
        (
            {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "(string | number)[]",
        ),
        ({"type": "array"}, "unknown[]"),
        (
            {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "maxItems": 2},
            "[string, number]",
        ),
        (
            {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}},
            "[string, ...number[]]",
        ),
        ({"type": "object"}, "Record<string, unknown>"),
        ({"type": "object", "additionalProperties": {"type": "integer"}}, "Record<string, number>"),
        ({"type": "object", "additionalProperties": False}, "Record<string, never>"),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b-c": {"type": "integer"}},
                "required": ["a"],
            },
            '{ a: string; "b-c"?: number }',
        ),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True},
            "{ a?: string; [key: string]: unknown }",
        ),
        ({"$ref": "#/components/schemas/Said"}, "Said"),
        ({"$ref": "#/components/schemas/module__Name"}, "module__Name"),
        ({"$ref": "#/components/schemas/Name-1.x"}, "Name_1_x"),
        ({"$ref": "#/components/schemas/Topic"}, "TopicModel"),  # the module's own name
        ({"$ref": "#/$defs/Elsewhere"}, "unknown"),
        ({"allOf": [{"$ref": "#/components/schemas/A"}]}, "A"),
        ({"allOf": [{"$ref": "#/components/schemas/A"}, {"$ref": "#/components/schemas/B"}]}, "A & B"),
        (
            {
                "oneOf": [{"$ref": "#/components/schemas/Circle"}, {"$ref": "#/components/schemas/Square"}],
                "discriminator": "kind",
            },
            "Circle | Square",
        ),
        (
            {
                "oneOf": [{"$ref": "#/components/schemas/Circle"}, {"$ref": "#/components/schemas/Square"}],
                "discriminator": {"propertyName": "kind", "mapping": {}},
            },
            "Circle | Square",
        ),
        ({"anyOf": [{"type": "string"}, {}]}, "unknown"),
    ],
)
def test_schema_types(schema: Any, expected: str) -> None:
    assert schema_type(schema) == expected


SAID = {
    "description": "A line of the room.\n\nWith a second paragraph.",
    "type": "object",
    "properties": {
        "type": {"const": "said", "default": "said", "title": "Type", "type": "string"},
        "text": {"type": "string", "description": "What was said; */ ends no comment."},
        "at": {"type": "string", "format": "date-time"},
        "user": {"anyOf": [{"$ref": "#/components/schemas/User"}, {"type": "null"}], "default": None},
        "mood": {"enum": ["happy", "sad"], "type": "string", "default": "happy"},
        "count": {"type": "integer", "default": 0, "deprecated": True},
    },
    "required": ["text", "at"],
}


def test_an_object_model_is_an_interface() -> None:
    # `type` is not in `required` (the document's current shape), but it is a tag with its
    # value as default: the server always sends it, and unions narrow on it.
    assert schema_declaration("Said", SAID) == (
        "/**\n"
        " * A line of the room.\n"
        " *\n"
        " * With a second paragraph.\n"
        " */\n"
        "export interface Said {\n"
        '  type: "said";\n'
        "  /** What was said; *\\/ ends no comment. */\n"
        "  text: string;\n"
        "  /** Format: date-time. */\n"
        "  at: string;\n"
        "  /** @default null */\n"
        "  user?: User | null;\n"
        '  mood?: "happy" | "sad";\n'
        "  /**\n"
        "   * @default 0\n"
        "   * @deprecated\n"
        "   */\n"
        "  count?: number;\n"
        "}\n"
    )


def test_an_object_model_in_jsdoc() -> None:
    assert schema_declaration("Said", SAID, flavor="js") == (
        "/**\n"
        " * A line of the room.\n"
        " *\n"
        " * With a second paragraph.\n"
        " * @typedef {object} Said\n"
        ' * @property {"said"} type\n'
        " * @property {string} text What was said; *\\/ ends no comment.\n"
        " * @property {string} at Format: date-time.\n"
        " * @property {User | null} [user]\n"
        ' * @property {"happy" | "sad"} [mood]\n'
        " * @property {number} [count]\n"
        " */\n"
    )


def test_other_models_are_aliases() -> None:
    color = {"description": "A color.", "enum": ["red", "green"], "type": "string"}
    assert schema_declaration("Color", color) == '/** A color. */\nexport type Color = "red" | "green";\n'
    assert schema_declaration("Color", color, flavor="js") == (
        '/**\n * A color.\n * @typedef {"red" | "green"} Color\n */\n'
    )
    free = {"type": "object", "properties": {"a-b": {"type": "string"}}, "required": ["a-b"]}
    # JSDoc has no @property for such a name: the type is written out.
    assert schema_declaration("Free", free, flavor="js") == '/** @typedef {{ "a-b": string }} Free */\n'
    extra = {"type": "object", "properties": {"name": {"type": "string"}}, "additionalProperties": True}
    assert schema_declaration("Extra", extra) == (
        "export interface Extra {\n  name?: string;\n  [key: string]: unknown;\n}\n"
    )
    many = {"anyOf": [{"$ref": f"#/components/schemas/Event{n}"} for n in range(12)]}
    assert schema_declaration("Event", many).splitlines()[:3] == [
        "export type Event =",
        "  | Event0",
        "  | Event1",
    ]


# --- routes, from documents ----------------------------------------------------------------


def message(payload: Any, content_type: str = "application/json") -> dict[str, Any]:
    return {"contentType": content_type, "payload": payload}


def operation(action: str, channel: str, *messages: str, reply: list[str] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in messages],
    }
    if reply is not None:
        found["reply"] = {
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in reply],
        }
    return found


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# A document with request/reply, built by hand (the server does not describe replies yet): its
# channels use both shapes, one receive operation per handler (calc) and merged ones; /mixed
# takes and sends both JSON and text.
REPLY_DOCUMENT: dict[str, Any] = {
    "asyncapi": "3.0.0",
    "info": {"title": "Replies", "version": "0.0.1"},
    "defaultContentType": "application/json",
    "channels": {
        "calc_op": {
            "address": "/calc/{op}",
            "parameters": {"op": {"description": "`op`: the operation.", "enum": ["add", "mul"]}},
            "messages": {
                "numbers": message(ref("Numbers")),
                "reset": message(ref("Reset")),
                "Result": message(ref("Result")),
                "Notice": message(
                    {"type": "object", "properties": {"note": {"type": "string"}}, "required": ["note"]}
                ),
            },
        },
        "upper": {
            "address": "/upper",
            "messages": {
                "upper": message({"type": "string"}, "text/plain"),
                "text": message({"type": "string"}, "text/plain"),
            },
        },
        "plain": {"address": "/plain", "messages": {"plain": message({"type": "string"}, "text/plain")}},
        "mixed": {
            "address": "/mixed",
            "messages": {"text": message({"type": "string"}, "text/plain"), "model": message(ref("Result"))},
        },
    },
    "operations": {
        "calc_op.receive": operation("receive", "calc_op", "numbers", reply=["Result"]),
        "calc_op.receive_2": operation("receive", "calc_op", "reset"),
        "calc_op.send": operation("send", "calc_op", "Notice"),
        "upper.receive": operation("receive", "upper", "upper", reply=["text"]),
        "plain.receive": operation("receive", "plain", "plain"),
        "mixed.receive": operation("receive", "mixed", "text", "model"),
        "mixed.send": operation("send", "mixed", "text", "model"),
    },
    "components": {
        "schemas": {
            "Numbers": {
                "type": "object",
                "properties": {
                    "kind": {"const": "numbers", "type": "string"},
                    "values": {"type": "array", "items": {"type": "number"}},
                },
                "required": ["kind", "values"],
            },
            "Reset": {
                "type": "object",
                "properties": {"kind": {"const": "reset", "default": "reset", "type": "string"}},
            },
            "Result": {
                "type": "object",
                "properties": {"value": {"type": "number"}, "exact": {"type": "boolean"}},
                "required": ["value"],
            },
        }
    },
}


def test_request_only_where_a_reply_is_described() -> None:
    module = typescript_module(REPLY_DOCUMENT, source="replies:app")
    assert "export type CalcSend = Numbers | Reset;\n" in module  # both receive operations
    assert "export type CalcReply = Result;\n" in module
    assert "export type UpperReply = string;\n" in module
    assert "PlainReply" not in module
    assert (
        "  open(\n"
        '    params: { op: "add" | "mul" },\n'
        "    options?: MultiplexOptions,\n"
        "  ): RequestTopic<CalcSend, CalcMessage, CalcReply> {\n"
        "    const url = `/calc/${encodeURIComponent(params.op)}`;\n"
        '    return openRequestTopic(url, { send: "json", receive: "json", reply: "json" }, options);\n'
    ) in module
    assert (
        "  open(options?: MultiplexOptions): RequestTopic<UpperSend, UpperMessage, UpperReply> {\n"
        '    return openRequestTopic("/upper", { send: "raw", receive: "raw", reply: "raw" }, options);\n'
    ) in module
    assert "  open(options?: MultiplexOptions): Topic<PlainSend, PlainMessage> {\n" in module
    assert 'import type { MultiplexOptions, RequestOptions } from "/wsroute/multiplex.js";\n' in module
    # Without any reply, the module leaves request() out altogether.
    assert "request" not in typescript_module(asyncapi_for_app(chat_app))


def test_a_handler_that_returns_a_value_gets_request() -> None:
    """The server's own document: a message handler with a return type has a reply."""
    module = typescript_module(typescript_zoo_document())
    assert "export type AskReply = Answer;\n" in module
    assert "  open(options?: MultiplexOptions): RequestTopic<AskSend, AskMessage, AskReply> {\n" in module
    assert module.count("return openRequestTopic(") == 1  # only /ask takes requests


def typescript_zoo_document() -> dict[str, Any]:
    return asyncapi_for_app(typescript_zoo.app)


def test_route_names_and_how_values_travel() -> None:
    module = typescript_module(typescript_zoo_document(), source="apps.typescript_zoo:app")
    consts = re.findall(r"^export const (\w+) = \{\n  /\*\*.*\*/\n  address: (\"[^\"]+\")", module, re.M)
    assert consts == [
        ("draw", '"/draw/{board}"'),
        ("figures", '"/figures"'),
        ("upload", '"/upload/{name}"'),
        ("text", '"/text"'),
        ("raw", '"/raw"'),
        ("items", '"/items"'),
        ("itemsByItemId", '"/items/{item_id}"'),  # `items` is taken
        ("deleteRoute", '"/delete"'),  # a reserved word
        ("paint", '"/paint/{color}"'),
        ("search", '"/search"'),
        ("ask", '"/ask"'),
        ("watch", '"/watch"'),
    ]
    aliases = dict(re.findall(r"^export type (\w+) = (.+);$", module, re.M))
    assert aliases["DrawSend"] == "Drawing"
    assert aliases["DrawMessage"] == "Ack | Shape"
    assert aliases["FiguresSend"] == "Circle | Square"
    assert aliases["UploadSend"] == "ArrayBuffer | ArrayBufferView"  # no Blob: the client refuses one
    assert aliases["UploadMessage"] == "ArrayBuffer | Blob | Ack"
    assert aliases["TextSend"] == aliases["TextMessage"] == "string"
    assert aliases["RawSend"] == "string | ArrayBuffer | ArrayBufferView"
    assert aliases["RawMessage"] == "string | ArrayBuffer | Blob"
    assert aliases["ItemsMessage"] == "TopicModel"  # the model `Topic`, renamed
    assert aliases["WatchSend"] == "never"
    codecs = re.findall(r"(?:openTopic|openRequestTopic)\((?:\"[^\"]+\"|url), (\{[^}]+\})", module)
    assert codecs == [
        '{ send: "json", receive: "json" }',  # draw
        '{ send: "json", receive: "json" }',  # figures
        '{ send: "raw", receive: "json" }',  # upload: binary as is, JSON parsed
        '{ send: "raw", receive: "raw" }',  # text
        '{ send: "raw", receive: "raw" }',  # raw
        '{ send: "json", receive: "json" }',  # items
        '{ send: "json", receive: "json" }',  # itemsByItemId
        '{ send: "json", receive: "json" }',  # deleteRoute
        '{ send: "json", receive: "json" }',  # paint
        '{ send: "raw", receive: "json" }',  # search
        '{ send: "json", receive: "raw", reply: "json" }',  # ask: sends nothing, answers JSON
        '{ send: "raw", receive: "json" }',  # watch
    ]
    # Query parameters (from the channel's ws binding) join the path's; the path's are encoded.
    assert (
        "    const url = withQuery(`/items/${encodeURIComponent(params.item_id)}`, "
        "{ page: params.page, tag: params.tag });\n"
    ) in module
    assert "params: { item_id: string; page?: number; tag?: string[] | null },\n" in module
    assert '    params: { color: "red" | "green" },\n' in module  # an Enum
    assert "params: { q?: string | null } = {},\n" in module  # all optional: `search.open()`
    assert aliases["SearchMessage"] == "TopicModel[]"


def test_text_and_json_messages_on_one_channel() -> None:
    module = typescript_module(REPLY_DOCUMENT)
    # Strings go as they are, models as JSON; received, the two cannot be told apart: strings.
    assert "export type MixedSend = string | Result;\n" in module
    assert "export type MixedMessage = string;\n" in module
    assert 'openTopic("/mixed", { send: "json-or-text", receive: "raw" }, options)' in module


def test_the_current_and_the_improved_document_shapes_give_one_module() -> None:
    """Tags not yet required, one send operation per message: the same TypeScript. (A tag
    with a default is what pydantic leaves out of `required`; one without is required
    either way.)"""
    improved = asyncapi_for_app(chat_app)
    current = copy.deepcopy(improved)
    for schema in current["components"]["schemas"].values():
        if "default" in schema.get("properties", {}).get("type", {}):
            schema["required"].remove("type")
    sends = {key: op for key, op in current["operations"].items() if op["action"] == "send"}
    for key, op in sends.items():
        del current["operations"][key]
        for n, message_ref in enumerate(op["messages"]):
            current["operations"][f"{key}_{n}"] = {**op, "messages": [message_ref]}
    assert typescript_module(current, source=CHAT_SOURCE) == typescript_module(improved, source=CHAT_SOURCE)


def test_the_output_is_deterministic_and_says_where_it_comes_from() -> None:
    first = typescript_module(asyncapi_for_app(chat_app), source=CHAT_SOURCE)
    again = typescript_module(
        asyncapi_for_app(chat_app, host="example.com", protocol="wss"), source=CHAT_SOURCE
    )
    assert first == again
    assert first.startswith(
        "// Generated by wsroute from the AsyncAPI document of examples.chat.app:app "
        '("wsroute chat" 0.1.0).\n'
        "// Do not edit: regenerate it with `python -m wsroute typescript examples.chat.app:app`.\n"
    )
    js = typescript_module(asyncapi_for_app(chat_app), source=CHAT_SOURCE, flavor="js", client_module="/x.js")
    assert js.startswith("// @ts-check\n")
    assert "`python -m wsroute typescript examples.chat.app:app --js --client-module /x.js`" in js
    assert 'import { MultiplexWebSocket } from "/x.js";\n' in js


# --- tsc -----------------------------------------------------------------------------------


def tsc_command() -> list[str]:
    """``node tsc`` of the pinned TypeScript; skips (fails in CI) without it."""
    node = shutil.which("node")
    if node is None:
        ci.unavailable(f"node is not on PATH: run `{INSTALL}`")
    pinned = json.loads((JS_TESTS / "package.json").read_text())["devDependencies"]["typescript"]
    manifest = TYPESCRIPT / "package.json"
    if not manifest.exists():
        ci.unavailable(f"typescript is not installed in tests/js/node_modules: run `{INSTALL}`")
    installed = json.loads(manifest.read_text())["version"]
    if installed != pinned:
        ci.unavailable(
            f"tests/js/node_modules has typescript {installed}, not the pinned {pinned}: run `{INSTALL}`"
        )
    return [node, str(TYPESCRIPT / "bin" / "tsc"), "--pretty", "false"]


def run_tsc(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*tsc_command(), "-p", "."],
        cwd=project,  # paths in messages are relative to the project
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def generated_project(directory: Path, *extra: Path) -> Path:
    """Both flavors of the modules for the chat, the zoo and the reply document, with `extra`
    files, and a tsconfig.json that compiles them all (as strictly as `STRICT_OPTIONS`)."""
    documents = {
        "chat": (asyncapi_for_app(chat_app), CHAT_SOURCE),
        "zoo": (typescript_zoo_document(), "apps.typescript_zoo:app"),
        "reply": (REPLY_DOCUMENT, None),
    }
    files = []
    for name, (document, source) in documents.items():
        (directory / f"{name}.ts").write_text(typescript_module(document, source=source))
        (directory / f"{name}_js.js").write_text(typescript_module(document, source=source, flavor="js"))
        files += [f"{name}.ts", f"{name}_js.js"]
    for path in extra:
        shutil.copy(path, directory / path.name)
        files.append(path.name)
    config = {"compilerOptions": STRICT_OPTIONS, "files": files}
    (directory / "tsconfig.json").write_text(json.dumps(config, indent=2))
    return directory


def test_generated_modules_compile_under_strict(tmp_path: Path) -> None:
    result = run_tsc(generated_project(tmp_path, FIXTURES / "usage.ts"))
    assert result.returncode == 0, f"tsc failed:\n{result.stdout}{result.stderr}"


def test_a_wrong_send_fails_to_compile_on_its_line(tmp_path: Path) -> None:
    fixture = FIXTURES / "wrong_send.ts"
    lines = fixture.read_text().splitlines()
    wrong = {n for n, line in enumerate(lines, 1) if "// wrong:" in line and not line.startswith("//")}
    assert len(wrong) == 5
    result = run_tsc(generated_project(tmp_path, fixture))
    assert result.returncode != 0
    errors = re.findall(r"^(\S+)\((\d+),\d+\): error (TS\d+): (.*)$", result.stdout, re.M)
    assert errors, result.stdout
    assert {file for file, *_ in errors} == {"wrong_send.ts"}, result.stdout
    assert {int(line) for _, line, *_ in errors} == wrong, result.stdout
    by_line = {int(line): text for _, line, _, text in errors}
    assert "'number' is not assignable to type 'string'" in by_line[min(wrong)]
    assert '"triangle"' in by_line[min(wrong) + 1]


def test_the_chat_front_end_checks_against_its_generated_module() -> None:
    """examples/chat/static/chat-api.js is what the generator makes of the chat app today,
    and room.js type-checks against it (``tsc -p examples/chat``)."""
    expected = typescript_module(asyncapi_for_app(chat_app), source=CHAT_SOURCE, flavor="js")
    assert CHAT_API.read_text() == expected, (
        f"{CHAT_API.relative_to(ROOT)} is out of date: run "
        f"`python -m wsroute typescript {CHAT_SOURCE} --js -o {CHAT_API.relative_to(ROOT)}`"
    )
    assert "// @ts-check" in (CHAT_API.parent / "room.js").read_text()
    result = run_tsc(ROOT / "examples" / "chat")
    assert result.returncode == 0, f"tsc -p examples/chat failed:\n{result.stdout}{result.stderr}"


# --- the command line ----------------------------------------------------------------------


def test_the_command_prints_or_writes_the_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["typescript", CHAT_SOURCE]) == 0
    printed = capsys.readouterr().out
    assert printed == typescript_module(asyncapi_for_app(chat_app), source=CHAT_SOURCE)

    target = tmp_path / "chat-api.js"
    assert main(["typescript", CHAT_SOURCE, "--js", "-o", str(target)]) == 0
    assert capsys.readouterr().out == ""
    assert target.read_text() == CHAT_API.read_text()

    assert main(["typescript", CHAT_SOURCE, "--client-module", "/assets/ws/multiplex.js"]) == 0
    assert 'from "/assets/ws/multiplex.js";' in capsys.readouterr().out

    with pytest.raises(SystemExit, match="not of the form module:app"):
        main(["typescript", "examples.chat.app"])
