"""Rooms with history on a shared broker, for the recovery tests across workers.

Served by uvicorn subprocesses (``uvicorn apps.history_app:app --app-dir tests``); the broker
URL comes from ``WSROUTE_TEST_BROKER``.

* ``/rooms/{room}``: history of 5000 publications, recovery of up to 5000; a message is
  broadcast to the room.
* ``POST /burst?topic=…&count=N&tag=T``: broadcasts ``T:1`` … ``T:N`` to `topic`, one after
  another, and answers once all were published.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from wsroute import AppBroker, BrokerBackend, Channel, WsRouter

HISTORY = 5000


def create_app(broker: str | BrokerBackend) -> FastAPI:
    """The app publishing through `broker` (a URL, or a backend with settings of its own)."""
    ws = WsRouter(broker=broker)

    @ws.message("/rooms/{room}")
    async def said(data: str, channel: Channel) -> None:
        await channel.broadcast(data)

    ws.topic("/rooms/{room}", history=HISTORY, recovery_limit=HISTORY)
    app = FastAPI()

    @app.post("/burst")
    async def burst(topic: str, count: int, tag: str, broker: AppBroker) -> PlainTextResponse:
        for i in range(1, min(count, HISTORY) + 1):
            await broker.broadcast_to(topic, f"{tag}:{i}")
        return PlainTextResponse("sent")

    @app.get("/health")
    async def health() -> PlainTextResponse:
        return PlainTextResponse(str(os.getpid()))

    ws.install(app)
    return app


app = create_app(os.environ.get("WSROUTE_TEST_BROKER", "memory://"))
