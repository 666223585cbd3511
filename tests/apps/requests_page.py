"""A page driving ``MultiplexWebSocket.request()`` in a real browser, for the request/reply test.

Served by a uvicorn subprocess (``uvicorn apps.requests_page:app --app-dir tests``) so that the
test can kill it and start it again on the same port.

* ``/``: an HTML page that imports ``/wsroute/multiplex.js`` as an ES module and exposes
  ``window.req``: ``req.open(path)`` opens a `MultiplexWebSocket` and records its ``open``,
  ``message``, ``close`` and ``error`` events; ``req.request(path, data, timeout)`` calls
  ``request()`` on it and returns a key under which ``req.results`` records how (and when, and
  how many times) the promise settled; ``req.requestMany`` starts many at once and awaits
  them all. The page itself opens nothing: the test decides.
* WebSocket topics, with message handlers only (no join, so every ``message`` event a page
  sees is a broadcast or a bug):

  * ``/echo``: takes ``{"n": int, "text": str}`` (a pydantic model), returns
    ``{"n": n, "echo": text}`` (a pydantic model).
  * ``/reverse``: returns the text reversed.
  * ``/items``: takes ``{"id": int}``; returns ``{"id": id, "name": "item {id}"}`` (a dict);
    id 0 raises RuntimeError (a bug: 1011), a negative id raises
    ``WebSocketException(4002, "no such item")``.
  * ``/slow``: takes ``"MS:TAG"``, sleeps MS milliseconds (at most 3000), returns
    ``"slept TAG"``.
  * ``/ack``: returns None.
* ``GET /stats``: the physical WebSocket connections open right now, counted by an ASGI
  wrapper around the whole app (`SocketCounter`), which sees transport-level events only.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel
from starlette.exceptions import WebSocketException

from apps.socket_counter import SocketCounter
from wsroute import WsRouter

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>wsroute request/reply browser test</title>
<link rel="icon" href="data:,">
</head>
<body>
<h1>request/reply</h1>
<p id="status">loading</p>
<script type="module">
import { MultiplexWebSocket, RequestError } from "/wsroute/multiplex.js";

const topics = {};  // path -> { ws, opens, messages, closes, errors }
const results = {};  // key -> how its request settled
let nextKey = 0;

function describe(error) {
  return {
    name: error?.name, isRequestError: error instanceof RequestError, kind: error?.kind ?? null,
    code: error?.code ?? null, reason: error?.reason ?? null, message: String(error?.message ?? error),
  };
}

window.req = {
  topics,
  results,
  settlements: 0,  // every settlement of every request, counted once per then/catch call
  open(path) {
    const ws = new MultiplexWebSocket(path);
    const t = { ws, opens: 0, messages: [], closes: [], errors: 0 };
    topics[path] = t;
    ws.onopen = () => { t.opens += 1; };
    ws.onmessage = (event) => { t.messages.push(String(event.data)); };
    ws.addEventListener("close", (event) => {
      t.closes.push({ code: event.code, reason: event.reason, wasClean: event.wasClean });
    });
    ws.addEventListener("error", () => { t.errors += 1; });
    return ws.readyState;
  },
  close(path, code, reason) { topics[path].ws.close(code, reason); },
  request(path, data, timeout) {
    const key = String(++nextKey);
    const started = performance.now();
    const record = { path, data, state: "pending", settles: 0, value: null, error: null, ms: null };
    results[key] = record;
    const settle = (state, field, value) => {
      window.req.settlements += 1;
      record.settles += 1;
      if (record.settles > 1) return;  // never expected: a promise settles once
      record.state = state;
      record[field] = value;
      record.ms = performance.now() - started;
    };
    let promise;
    try {
      promise = topics[path].ws.request(data, timeout === null ? undefined : { timeout });
    } catch (error) {
      settle("threw", "error", describe(error));
      return key;
    }
    promise.then(
      (value) => settle("resolved", "value", typeof value === "string" ? value : `<${typeof value}>`),
      (error) => settle("rejected", "error", describe(error)),
    );
    return key;
  },
  // Start a request per [path, data] pair, all in this task (so all are in flight at once);
  // resolves with their records once every one has settled (or `timeout` + 2 s have passed).
  async requestMany(pairs, timeout) {
    const keys = pairs.map(([path, data]) => window.req.request(path, data, timeout));
    const pendingAfterSend = keys.filter((k) => results[k].state === "pending").length;
    const deadline = performance.now() + timeout + 2000;
    while (keys.some((k) => results[k].state === "pending") && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return { pendingAfterSend, records: keys.map((k) => results[k]) };
  },
  state() {
    const out = {};
    for (const [path, t] of Object.entries(topics)) {
      const socket = t.ws.socket;
      out[path] = {
        readyState: t.ws.readyState, opens: t.opens, messages: t.messages.slice(),
        closes: t.closes.slice(), errors: t.errors, socketState: socket.state,
        physical: socket.webSocket?.readyState ?? null, url: socket.webSocket?.url ?? null,
      };
    }
    return out;
  },
  sockets() { return new Set(Object.values(topics).map((t) => t.ws.socket)).size; },
};
window.reqReady = true;
document.getElementById("status").textContent = "ready";
</script>
</body>
</html>
"""


class Item(BaseModel):
    n: int
    text: str


class Echoed(BaseModel):
    n: int
    echo: str


class Lookup(BaseModel):
    id: int


ws = WsRouter()


@ws.message("/echo")
async def echo(data: Item) -> Echoed:
    return Echoed(n=data.n, echo=data.text)


@ws.message("/reverse")
async def reverse(data: str) -> str:
    return data[::-1]


@ws.message("/items")
async def item(data: Lookup) -> dict[str, Any]:
    if data.id == 0:
        raise RuntimeError("a bug in the items handler")
    if data.id < 0:
        raise WebSocketException(4002, "no such item")
    return {"id": data.id, "name": f"item {data.id}"}


@ws.message("/slow")
async def slow(data: str) -> str:
    ms, _, tag = data.partition(":")
    await asyncio.sleep(min(int(ms), 3000) / 1000)
    return f"slept {tag}"


@ws.message("/ack")
async def ack(data: str) -> None:
    return None


fastapi_app = FastAPI()


@fastapi_app.get("/")
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE)


@fastapi_app.get("/stats")
async def stats() -> JSONResponse:
    return JSONResponse(app.stats())


ws.install(fastapi_app)
app = SocketCounter(fastapi_app)
