"""The presence app (``tests/apps/presence_app.py``) plus a page driving the browser client's
presence, for the real-browser presence test.

Served by uvicorn subprocesses (``uvicorn apps.presence_page:app --app-dir tests``), one per
worker, all on the broker URL in ``WSROUTE_TEST_BROKER`` (e.g. ``redis://…?channel_prefix=t1:``).

* ``/``: an HTML page that imports ``/wsroute/multiplex.js`` as an ES module and exposes
  ``window.pres``: ``pres.open(topic)`` opens one `MultiplexWebSocket` (e.g. on
  ``/rooms/lobby?user=ann``) and records every ``presence`` event it fires (its ``joins``,
  ``leaves``, and ``presence`` and ``clientId`` as they were right then), as well as its
  ``open``, ``close`` and ``error`` events; ``pres.state()`` reports what the topic exposes
  now. The page itself opens nothing: the test decides.
* Everything else is the presence app's: ``/rooms/{room}?user=NAME`` (presence on, info
  ``{"pid": <worker pid>}``), ``GET /presence?topic=``, ``GET /stats?topic=``, ``GET /health``
  (the worker's pid), and ``/wsroute/multiplex.js``.
"""

from __future__ import annotations

import os

from fastapi.responses import HTMLResponse

from apps.presence_app import create_app

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>wsroute presence browser test</title>
<link rel="icon" href="data:,">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; }
  li { margin: 0.2em 0; }
  code { font-size: 12px; }
</style>
</head>
<body>
<h1>presence</h1>
<p id="status">loading</p>
<ul id="members"></ul>
<script type="module">
import { MultiplexWebSocket } from "/wsroute/multiplex.js";

const STATES = ["CONNECTING", "OPEN", "CLOSING", "CLOSED"];
// Plain copies: what the test reads is what the client exposed at that moment.
const copy = (value) => JSON.parse(JSON.stringify(value));
const frozenDeep = (list) =>
  Object.isFrozen(list) &&
  list.every((entry) => Object.isFrozen(entry) && Object.isFrozen(entry.clients) &&
    entry.clients.every((client) => Object.isFrozen(client)));

function escape(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;");
}

function render() {
  const ws = window.pres.ws;
  if (ws === null) return;
  document.getElementById("status").textContent =
    `${ws.topic}: ${STATES[ws.readyState]}, clientId ${ws.clientId}, ` +
    `${window.pres.events.length} presence events`;
  document.getElementById("members").innerHTML = ws.presence.map((entry) =>
    `<li><b>${escape(entry.user ?? "(anonymous)")}</b>: ` +
    entry.clients.map((c) => `<code>${escape(c.clientId)}</code> pid ${escape(c.info?.pid)}` +
      (c.clientId === ws.clientId ? " (this tab)" : "")).join(", ") + "</li>").join("");
}

window.pres = {
  ws: null,
  events: [],  // one per `presence` event: { joins, leaves, presence, clientId }
  handlerCalls: 0,  // calls of `onpresence` (the events also reach the listener above)
  opens: 0,
  closes: [],
  errors: 0,
  open(topic) {
    const ws = new MultiplexWebSocket(topic);
    window.pres.ws = ws;
    ws.onopen = () => { window.pres.opens += 1; render(); };
    ws.onpresence = () => { window.pres.handlerCalls += 1; };
    ws.addEventListener("presence", (event) => {
      window.pres.events.push({
        joins: copy(event.joins), leaves: copy(event.leaves),
        presence: copy(ws.presence), clientId: ws.clientId,
      });
      render();
    });
    ws.addEventListener("close", (event) => {
      window.pres.closes.push({ code: event.code, reason: event.reason, wasClean: event.wasClean });
      render();
    });
    ws.addEventListener("error", () => { window.pres.errors += 1; });
    render();
    return ws.readyState;
  },
  state() {
    const ws = window.pres.ws;
    return {
      readyState: ws.readyState, clientId: ws.clientId, presence: copy(ws.presence),
      frozen: frozenDeep(ws.presence), sameArray: ws.presence === ws.presence,
      events: copy(window.pres.events), handlerCalls: window.pres.handlerCalls,
      opens: window.pres.opens, closes: copy(window.pres.closes), errors: window.pres.errors,
    };
  },
};
window.presReady = true;
document.getElementById("status").textContent = "ready";
</script>
</body>
</html>
"""

app = create_app(os.environ.get("WSROUTE_TEST_BROKER", "memory://"))


@app.get("/")
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE)
