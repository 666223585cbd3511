"""A page driving the rocket-multiplex browser client, for the real-browser test.

Served by a uvicorn subprocess (``uvicorn apps.multiplex_page:app --app-dir tests``) so that
the test can kill it and start it again on the same port.

* ``/``: an HTML page that imports ``/wsroute/multiplex.js`` as an ES module and exposes
  ``window.mux``: ``mux.open(path)`` opens a `MultiplexWebSocket` and records its ``open``,
  ``message``, ``close`` and ``error`` events per topic; ``mux.send(path, text)`` sends on it.
  The page itself opens nothing: the test decides.
* ``/rooms/{room}`` (WebSocket): join sends ``joined {room}`` to the joiner only; a message is
  broadcast to the room as ``{room}> {text}``.
* ``/echo`` (WebSocket): join sends ``joined echo``; a message comes back as ``echo: {text}``.
* ``/stuck`` (WebSocket): its guard hangs for 3 s the first time it runs (a database that
  stopped answering), then lets everyone in; join sends ``joined stuck``.
* ``POST /rooms/{room}/announce``: the body is broadcast to ``/rooms/{room}`` through
  `AppBroker` as ``announce {room}: {body}``.
* ``GET /stats``: the physical WebSocket connections open right now, counted by an ASGI
  wrapper around the whole app (`SocketCounter`), which sees transport-level events only and
  knows nothing of topics; plus the join/leave log of the virtual connections.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from apps.socket_counter import SocketCounter
from wsroute import AppBroker, Channel, WebSocketStatus, WsRouter

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>wsroute multiplex browser test</title>
<link rel="icon" href="data:,">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; }
  table { border-collapse: collapse; }
  td, th { border: 1px solid #999; padding: 0.2em 0.6em; vertical-align: top; text-align: left; }
  pre { margin: 0; font-size: 12px; }
</style>
</head>
<body>
<h1>rocket-multiplex topics</h1>
<p id="status">loading</p>
<table>
  <thead><tr><th>topic</th><th>readyState</th><th>opens</th><th>last messages</th></tr></thead>
  <tbody id="topics"></tbody>
</table>
<script type="module">
import { MultiplexWebSocket } from "/wsroute/multiplex.js";

const STATES = ["CONNECTING", "OPEN", "CLOSING", "CLOSED"];
const topics = {};  // path -> { ws, opens, messages, closes, errors }

function render() {
  const rows = Object.entries(topics).map(([path, t]) => {
    const last = t.messages.slice(-4).map((m) => m.replace(/&/g, "&amp;").replace(/</g, "&lt;"));
    return `<tr><td>${path}</td><td>${STATES[t.ws.readyState]}</td><td>${t.opens}</td>` +
      `<td><pre>${last.join("\\n")}</pre></td></tr>`;
  });
  document.getElementById("topics").innerHTML = rows.join("");
  const socket = Object.values(topics)[0]?.ws.socket;
  document.getElementById("status").textContent = socket
    ? `shared socket: ${socket.state}, attempt ${socket.attempt}` : "no topic";
}

window.mux = {
  topics,
  open(path, options) {
    const ws = new MultiplexWebSocket(path, options);
    const t = { ws, opens: 0, messages: [], closes: [], errors: 0 };
    topics[path] = t;
    ws.onopen = () => { t.opens += 1; render(); };
    ws.onmessage = (event) => { t.messages.push(String(event.data)); render(); };
    ws.addEventListener("close", (event) => {
      t.closes.push({ code: event.code, reason: event.reason, wasClean: event.wasClean });
      render();
    });
    ws.addEventListener("error", () => { t.errors += 1; });
    render();
    return ws.readyState;
  },
  send(path, text) { topics[path].ws.send(text); },
  state() {
    const out = {};
    for (const [path, t] of Object.entries(topics)) {
      out[path] = {
        readyState: t.ws.readyState, opens: t.opens, messages: t.messages.slice(),
        closes: t.closes.slice(), errors: t.errors,
      };
    }
    return out;
  },
  render,
};
window.muxReady = true;
render();
</script>
</body>
</html>
"""


events: list[str] = []
ws = WsRouter()


@ws.join("/rooms/{room}")
async def room_joined(room: str, channel: Channel) -> None:
    events.append(f"join {channel.topic}")
    await channel.send(f"joined {room}")


@ws.message("/rooms/{room}")
async def room_said(room: str, data: str, channel: Channel) -> None:
    await channel.broadcast(f"{room}> {data}")


@ws.leave("/rooms/{room}")
async def room_left(status: WebSocketStatus, channel: Channel) -> None:
    events.append(f"leave {channel.topic} {status.code}")


@ws.join("/echo")
async def echo_joined(channel: Channel) -> None:
    events.append(f"join {channel.topic}")
    await channel.send("joined echo")


@ws.message("/echo")
async def echo(data: str, channel: Channel) -> None:
    await channel.send(f"echo: {data}")


@ws.leave("/echo")
async def echo_left(status: WebSocketStatus, channel: Channel) -> None:
    events.append(f"leave {channel.topic} {status.code}")


async def stuck_once() -> None:
    events.append("stuck guard")
    if events.count("stuck guard") == 1:
        await asyncio.sleep(3)


@ws.join("/stuck")
async def stuck_joined(channel: Channel, _: Annotated[None, Depends(stuck_once)]) -> None:
    events.append(f"join {channel.topic}")
    await channel.send("joined stuck")


fastapi_app = FastAPI()


@fastapi_app.get("/")
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE)


@fastapi_app.post("/rooms/{room}/announce")
async def announce(room: str, request: Request, broker: AppBroker) -> PlainTextResponse:
    body = (await request.body()).decode()
    await broker.broadcast_to(f"/rooms/{room}", f"announce {room}: {body}")
    return PlainTextResponse("sent")


@fastapi_app.get("/stats")
async def stats() -> JSONResponse:
    return JSONResponse({**app.stats(), "events": events})


ws.install(fastapi_app)
app = SocketCounter(fastapi_app)
