"""The generated module tells the truth about what the real server sends, and compiles
whatever the app's names and docstrings hold:

* replies: ``X | None`` resolves ``null`` for None (an empty reply); values the server sends
  as raw text though their annotation is not ``str`` (``str | None``, ``Model | str``,
  ``Literal["ok"]``, ``Channel[Literal[...]]``) are typed and decoded as text, checked end
  to end (the real server's reply fed to the generated module in node, through a stub of
  ``multiplex.js``);
* aliases: models go out by alias, which the output types name;
* the ``--js`` flavor compiles with query parameters that are not identifiers
  (``Query(alias="page-size")``);
* a model named like another model's rename (``Topic`` and ``TopicModel``) keeps its name;
* ``*/`` in a handler's docstring or a parameter's description does not end a doc comment.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from test_typescript import STRICT_OPTIONS, tsc_command

from wsroute import Channel, WsRouter
from wsroute.asyncapi import asyncapi_for_app
from wsroute.messages import encode
from wsroute.testing import MultiplexClient, serve
from wsroute.typescript import typescript_module

# --- helpers -------------------------------------------------------------------------------

STUB = """\
// A stand-in for multiplex.js: request() resolves with, and emit() dispatches, what the real
// server sent (as MessageEvent.data would carry it).
export const sockets = [];
export class MultiplexWebSocket {
  constructor(url) { this.url = url; this.listeners = []; this.reply = undefined; sockets.push(this); }
  addEventListener(type, listener) { if (type === "message") this.listeners.push(listener); }
  removeEventListener() {}
  send() {}
  close() {}
  async request() { return this.reply; }
  emit(data) { for (const listener of this.listeners) listener({ data }); }
}
"""

RUN = """\
import * as api from "./api.mjs";
import { sockets } from "./stub.mjs";
const out = [];
for (const step of JSON.parse(process.argv[2])) {
  const topic = api[step.route].open();
  const socket = sockets[sockets.length - 1];
  try {
    if (step.kind === "request") {
      socket.reply = step.server;
      out.push({ ok: await topic.request(step.payload) });
    } else {
      let got = "<no call>";
      topic.onMessage((data) => { got = data; });
      socket.emit(step.server);
      out.push({ ok: got });
    }
  } catch (error) {
    out.push({ error: `${error.name}: ${error.message}` });
  }
}
console.log(JSON.stringify(out));
"""


def run_in_node(directory: Path, app: FastAPI, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The generated JS module of `app`, run in node against a stub client: per step, what
    `request()` resolved with (or threw), or what `onMessage` listeners got."""
    node = tsc_command()[0]
    module = typescript_module(asyncapi_for_app(app), flavor="js", client_module="./stub.mjs")
    (directory / "api.mjs").write_text(module)
    (directory / "stub.mjs").write_text(STUB)
    (directory / "run.mjs").write_text(RUN)
    result = subprocess.run(
        [node, "run.mjs", json.dumps(steps)],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out: list[dict[str, Any]] = json.loads(result.stdout)
    return out


def tsc_project(directory: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Write `files` and compile them all as strictly as test_typescript.py does."""
    for name, text in files.items():
        (directory / name).write_text(text)
    config = {"compilerOptions": STRICT_OPTIONS, "files": list(files)}
    (directory / "tsconfig.json").write_text(json.dumps(config, indent=2))
    return subprocess.run(
        [*tsc_command(), "-p", "."],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# --- replies and messages sent as raw text, typed as JSON ------------------------------------


class Node(BaseModel):
    name: str


replies = WsRouter(title="replies", version="1")


@replies.message("/maybe")
async def maybe(data: Node) -> Node | None:
    """Look a node up: None when there is none."""
    return None


@replies.message("/text-or-none")
async def text_or_none(data: str) -> str | None:
    return data


@replies.message("/model-or-text")
async def model_or_text(data: Node) -> Node | str:
    return "plain text"


@replies.message("/status")
async def status(data: Node) -> Literal["ok", "busy"]:
    return "ok"


@replies.message("/maybe-status")
async def maybe_status(data: Node) -> Literal["ok", "busy"] | None:
    return None


@replies.join("/ticks")
async def ticks(channel: Channel[Literal["tick", "tock"]]) -> None:
    await channel.send("tick")


replies_app = FastAPI()
replies.install(replies_app)


async def real_replies() -> dict[str, str | bytes]:
    """What the real server sends: each route's reply to a request, and the join's message."""
    found: dict[str, str | bytes] = {}
    requests = {
        "/maybe": '{"name": "a"}',
        "/text-or-none": "hello",
        "/model-or-text": '{"name": "a"}',
        "/status": '{"name": "a"}',
    }
    async with serve(replies_app) as url:
        for path, payload in requests.items():
            async with MultiplexClient.connect(f"ws://{url}{path}", meta=True) as mux:
                found[path] = await mux.request(path, payload)
        async with MultiplexClient.connect(f"ws://{url}/ticks") as mux:
            found["/ticks"] = await mux.recv_data("/ticks")
    return found


async def test_an_optional_reply_resolves_null_when_the_handler_returns_none(tmp_path: Path) -> None:
    """``-> Node | None`` is typed ``Promise<Node | null>``; the server answers None with an
    empty reply, which the generated ``request()`` JSON.parse's: it rejects with a SyntaxError
    (not even a RequestError) instead of resolving."""
    module = typescript_module(asyncapi_for_app(replies_app))
    assert "export type MaybeReply = Node | null;" in module
    sent = await real_replies()
    assert sent["/maybe"] == ""  # docs/multiplexing.md: None "acknowledges with an empty reply"
    step = {"route": "maybe", "kind": "request", "payload": {"name": "a"}, "server": sent["/maybe"]}
    assert run_in_node(tmp_path, replies_app, [step]) == [{"ok": None}]


async def test_replies_and_messages_sent_as_text_are_not_parsed_as_json(tmp_path: Path) -> None:
    """A reply annotated ``str | None``, ``Node | str`` or ``Literal["ok", "busy"]``, and
    ``Channel[Literal["tick", "tock"]]``: the server sends the string as a raw text frame
    (``encode`` of a ``str``), the document describes it as JSON, so the generated module
    JSON.parse's ``hello``, ``plain text``, ``ok``, ``tick`` and throws."""
    module = typescript_module(asyncapi_for_app(replies_app))
    assert "export type TextOrNoneReply = string;" in module  # None: an empty string
    assert 'export type StatusReply = "ok" | "busy";' in module
    assert 'export type MaybeStatusReply = "ok" | "busy" | "";' in module  # None is ""
    assert 'export type TicksMessage = "tick" | "tock";' in module
    sent = await real_replies()
    assert sent["/text-or-none"] == "hello"
    assert sent["/model-or-text"] == "plain text"
    assert sent["/status"] == "ok"
    assert sent["/ticks"] == "tick"
    steps = [
        {"route": "textOrNone", "kind": "request", "payload": "hello", "server": sent["/text-or-none"]},
        {
            "route": "modelOrText",
            "kind": "request",
            "payload": {"name": "a"},
            "server": sent["/model-or-text"],
        },
        {"route": "status", "kind": "request", "payload": {"name": "a"}, "server": sent["/status"]},
        {"route": "ticks", "kind": "message", "server": sent["/ticks"]},
    ]
    got = run_in_node(tmp_path, replies_app, steps)
    assert got == [{"ok": "hello"}, {"ok": "plain text"}, {"ok": "ok"}, {"ok": "tick"}]


# --- aliases: models go out by alias, and the output types name the aliases -----------------


class Profile(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    user_name: str = Field(alias="userName")
    display_name: str = Field(serialization_alias="displayName")


aliases = WsRouter(title="aliases", version="1")


@aliases.message("/profile")
async def profile(data: Profile, channel: Channel[Profile]) -> Profile:
    await channel.send(data)
    return data


aliases_app = FastAPI()
aliases.install(aliases_app)


async def test_output_types_name_the_keys_the_server_sends(tmp_path: Path) -> None:
    """A model with aliases goes out by alias, as FastAPI sends a response model (a reply and
    a message alike), and what the server really sends is assignable to the generated output
    types, which name the aliases (``userName``, ``displayName``)."""
    async with (
        serve(aliases_app) as url,
        MultiplexClient.connect(f"ws://{url}/profile", meta=True) as mux,
    ):
        reply = await mux.request("/profile", '{"userName": "ann", "display_name": "Ann"}')
        message = await mux.recv_data("/profile")
    assert isinstance(reply, str) and isinstance(message, str)
    assert json.loads(reply) == json.loads(message) == {"userName": "ann", "displayName": "Ann"}
    assert json.loads(reply) == json.loads(encode(Profile(userName="ann", display_name="Ann"))["text"])
    usage = (
        'import type { ProfileMessage, ProfileReply, ProfileSend } from "./api.js";\n'
        # The input side is right: the server validates by alias.
        'export const sent: ProfileSend = { userName: "ann", display_name: "Ann" };\n'
        f"export const reply: ProfileReply = {reply};\n"
        f"export const message: ProfileMessage = {message};\n"
    )
    result = tsc_project(
        tmp_path, {"api.ts": typescript_module(asyncapi_for_app(aliases_app)), "usage.ts": usage}
    )
    assert result.returncode == 0, f"tsc failed:\n{result.stdout}{result.stderr}"


# --- the --js flavor and query parameters that are not identifiers --------------------------


class Search(BaseModel):
    text: str


queries = WsRouter(title="queries", version="1")


@queries.message("/search")
async def search(
    data: Search,
    channel: Channel[Search],
    item_query: Annotated[str | None, Query(alias="item-query")] = None,
    page_size: Annotated[int, Query(alias="page-size")] = 10,
) -> None:
    """Search, a page at a time."""


queries_app = FastAPI()
queries.install(queries_app)


def test_the_js_flavor_compiles_with_query_parameters_that_are_not_identifiers(tmp_path: Path) -> None:
    """``Query(alias="page-size")`` (FastAPI's own docs use ``alias="item-query"``): the JSDoc
    ``@param {number} [params.page-size]`` declares ``params.page``, and the body's
    ``params["page-size"]`` does not compile. The TypeScript flavor is fine."""
    document = asyncapi_for_app(queries_app)
    usage = (
        'import { search } from "./api.js";\n'
        'import { search as searchJs } from "./api_js.js";\n'
        'search.open({ "page-size": 5, "item-query": "x" });\n'
        'searchJs.open({ "page-size": 5, "item-query": "x" });\n'
    )
    files = {
        "api.ts": typescript_module(document),
        "api_js.js": typescript_module(document, flavor="js"),
        "usage.ts": usage,
    }
    result = tsc_project(tmp_path, files)
    assert result.returncode == 0, f"tsc failed:\n{result.stdout}{result.stderr}"


# --- a model named like another model's new name --------------------------------------------


class Topic(BaseModel):
    """Named like the module's own `Topic`: renamed `TopicModel`."""

    title: str


class TopicModel(BaseModel):
    """The app's own `TopicModel`."""

    subscribers: int


names = WsRouter(title="names", version="1")


@names.message("/topics")
async def topics(data: Topic, channel: Channel[TopicModel]) -> None:
    """A topic in, its stats out."""


names_app = FastAPI()
names.install(names_app)


def test_a_model_keeps_its_name_when_another_is_renamed(tmp_path: Path) -> None:
    """``Topic`` becomes ``TopicModel``, and the app's own ``TopicModel`` becomes
    ``TopicModelModel``: code importing ``TopicModel`` gets the other model's shape."""
    module = typescript_module(asyncapi_for_app(names_app))
    sent = encode(TopicModel(subscribers=3))["text"]
    usage = f'import type {{ TopicModel }} from "./api.js";\nexport const stats: TopicModel = {sent};\n'
    result = tsc_project(tmp_path, {"api.ts": module, "usage.ts": usage})
    assert result.returncode == 0, f"tsc failed:\n{result.stdout}{result.stderr}"


# --- */ in doc comments ----------------------------------------------------------------------


globs = WsRouter(title="globs", version="1")


@globs.message("/files/{pattern}")
async def files(
    pattern: Annotated[str, PathParam(description="A glob such as src/**/*.py.")], data: str
) -> None:
    """Match files against a glob such as `src/**/*.py`."""


globs_app = FastAPI()
globs.install(globs_app)


def test_a_glob_in_a_docstring_does_not_end_the_doc_comment(tmp_path: Path) -> None:
    """The handler's summary (in ``FilesSend``'s comment) and the path parameter's description
    (in ``open()``'s) are written without defusing ``*/``: the module does not compile."""
    document = asyncapi_for_app(globs_app)
    files = {"api.ts": typescript_module(document), "api_js.js": typescript_module(document, flavor="js")}
    result = tsc_project(tmp_path, files)
    assert result.returncode == 0, f"tsc failed:\n{result.stdout}{result.stderr}"
