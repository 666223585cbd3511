"""The app `tests/test_servers.py` serves on other ASGI servers (hypercorn, granian).

Run in a subprocess (``hypercorn apps.servers_app:app`` / ``granian ... apps.servers_app:app``
with tests/ on the path). What the test reads from the server goes to a file, not to an HTTP
route, so that it survives the server's shutdown: every `leave` appends one JSON line
``{"topic", "code", "reason", "who"}`` to the file named by ``WSROUTE_SERVERS_EVENTS``,
flushed at once.

* ``GET /health``: 200 ``ok`` (the readiness probe).
* ``/echo`` (WebSocket): every message comes back.
* ``/rooms/{room}`` (WebSocket): every message is broadcast to the room as ``{who}: {text}``.
* ``/secure`` (WebSocket): the guard refuses without ``?token`` (401 ``missing token``) and
  ``?token=banned`` (403 ``banned``); otherwise the join sends ``welcome {token}``.
* ``/close`` (WebSocket): any message makes the server close with 4000 ``bye``.
* ``/stay`` (WebSocket): does nothing with messages (for the shutdown test).
"""

from __future__ import annotations

import json
import os

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from wsroute import Channel, Guard, HandshakeRequest, Reject, WebSocketStatus, WsRouter

EVENTS = os.environ.get("WSROUTE_SERVERS_EVENTS", "")

ws = WsRouter()


def record(channel: Channel, status: WebSocketStatus) -> None:
    if not EVENTS:
        return
    line = {
        "topic": channel.topic,
        "code": status.code,
        "reason": status.reason,
        "who": channel.request.query_params.get("who", ""),
    }
    with open(EVENTS, "a", encoding="utf-8") as events:
        events.write(json.dumps(line) + "\n")


class User(Guard):
    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    async def from_request(cls, request: HandshakeRequest) -> User:
        token = request.query_params.get("token")
        if token is None:
            raise Reject(401, "missing token")
        if token == "banned":
            raise Reject(403, "banned")
        return cls(token)


@ws.message("/echo")
async def echo(data: str | bytes, channel: Channel) -> None:
    await channel.send(data)


@ws.message("/rooms/{room}")
async def said(data: str, channel: Channel, who: str = "anon") -> None:
    await channel.broadcast(f"{who}: {data}")


@ws.join("/secure")
async def secure(user: User, channel: Channel) -> None:
    await channel.send(f"welcome {user.name}")


@ws.message("/close")
async def close(data: str, channel: Channel) -> None:
    await channel.close(4000, "bye")


@ws.message("/stay")
async def stay(data: str) -> None:
    pass


@ws.leave("/{_}")
async def left(status: WebSocketStatus, channel: Channel) -> None:
    record(channel, status)


@ws.leave("/rooms/{room}")
async def left_room(status: WebSocketStatus, channel: Channel) -> None:
    record(channel, status)


app = FastAPI()
ws.install(app)


@app.get("/health", response_class=PlainTextResponse)
async def health() -> str:
    return "ok"
