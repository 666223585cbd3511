"""A chat app on a shared broker, for the Redis integration tests.

Served by real uvicorn subprocesses (``uvicorn apps.redis_chat:app --app-dir tests``), it
takes its broker URL from ``WSROUTE_TEST_BROKER`` (e.g. ``redis://127.0.0.1:6379/0?channel_prefix=t1:``);
`create_app` builds the same app around any broker for in-thread servers.

* ``/rooms/{room}``: join sends ``pid:<os.getpid()>`` (tells the test which worker it
  landed on); a message is broadcast to the room, or to everyone else when it starts
  with ``quiet:`` (exclude_self). A broadcast that fails during a broker outage answers
  ``error: ...`` and keeps the connection open.
* ``/echo``: sends each message back (no broker involved).
* ``POST /rooms/{room}/broadcast``: the body is broadcast with `Broker.broadcast_to`;
  503 with the error text when the broker is unavailable.
"""

from __future__ import annotations

import os

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from wsroute import AppBroker, Broker, BrokerBackend, BrokerUnavailable, Channel, WsRouter


def create_app(broker: str | BrokerBackend | Broker) -> FastAPI:
    """The chat app publishing through `broker`."""
    ws = WsRouter(broker=broker)

    @ws.join("/rooms/{room}")
    async def joined(channel: Channel) -> None:
        await channel.send(f"pid:{os.getpid()}")

    @ws.message("/rooms/{room}")
    async def said(data: str, channel: Channel) -> None:
        await channel.broadcast(data, exclude_self=data.startswith("quiet:"))

    @ws.message("/echo")
    async def echo(data: str, channel: Channel) -> None:
        await channel.send(data)

    @ws.exception_handler(BrokerUnavailable)
    async def broker_down(channel: Channel, exc: BrokerUnavailable) -> None:
        await channel.send(f"error: {exc}")

    app = FastAPI()

    @app.post("/rooms/{room}/broadcast")
    async def broadcast(room: str, request: Request, broker: AppBroker) -> PlainTextResponse:
        text = (await request.body()).decode()
        try:
            await broker.broadcast_to(f"/rooms/{room}", text)
        except BrokerUnavailable as exc:
            return PlainTextResponse(str(exc), status_code=503)
        return PlainTextResponse("sent")

    @app.get("/health")
    async def health() -> PlainTextResponse:
        return PlainTextResponse(str(os.getpid()))

    ws.install(app)
    return app


app = create_app(os.environ.get("WSROUTE_TEST_BROKER", "memory://"))
