"""Rooms with presence on a shared broker, for the presence tests across workers.

Served by uvicorn subprocesses (``uvicorn apps.presence_app:app --app-dir tests``); the broker
URL comes from ``WSROUTE_TEST_BROKER`` (e.g. ``redis://…?channel_prefix=t1:&presence_ttl=1``).

* ``/rooms/{room}?user=NAME``: a member named NAME, info ``{"pid": <worker pid>}``; the
  leave of each connection is counted with its close code (``GET /leaves``). The message
  ``me?`` is answered with the connection's client id; ``status:X`` sets its info to
  ``{"pid": …, "status": X}`` (`Channel.update_presence`) and answers ``updated: True``.
* ``/private/{room}``: a topic whose guard refuses everyone (403).
* ``GET /presence?topic=…`` / ``GET /stats?topic=…``: `Broker.presence` / `presence_stats`.
* ``POST /ban?user=…&code=…``: `Broker.disconnect` of the user, on every worker.
* ``POST /unsubscribe?topic=…&user=…&code=…`` and ``POST /subscribe?client_id=…&topic=…``:
  `Broker.unsubscribe` / `Broker.subscribe` (a refusal answers ``{"refused": status}``).
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from wsroute import AppBroker, Channel, PresenceInfo, Reject, WebSocketStatus, WsRouter


def refuse() -> None:
    raise Reject(403, "private")


def create_app(broker: str) -> FastAPI:
    """The app on `broker`."""
    ws = WsRouter(broker=broker)
    leaves: list[int] = []

    @ws.join("/rooms/{room}")
    async def enter(user: str | None = None) -> PresenceInfo:
        return PresenceInfo(user=user, info={"pid": os.getpid()})

    @ws.message("/rooms/{room}")
    async def said(data: str, channel: Channel) -> None:
        if data == "me?":
            await channel.send(channel.client_id)
        elif data.startswith("status:"):
            info = {"pid": os.getpid(), "status": data.removeprefix("status:")}
            await channel.send(f"updated: {await channel.update_presence(info)}")

    @ws.message("/private/{room}")
    async def private(data: str, _: Annotated[None, Depends(refuse)]) -> None: ...

    @ws.leave("/rooms/{room}")
    async def left(status: WebSocketStatus) -> None:
        leaves.append(status.code)

    ws.topic("/rooms/{room}", presence=True)
    app = FastAPI()

    @app.get("/presence")
    async def presence(topic: str, broker: AppBroker) -> list[dict[str, Any]]:
        found = await broker.presence(topic)
        return [{"client_id": m.client_id, "user": m.user, "info": m.info} for m in found]

    @app.get("/stats")
    async def stats(topic: str, broker: AppBroker) -> dict[str, int]:
        counts = await broker.presence_stats(topic)
        return {"clients": counts.clients, "users": counts.users}

    @app.post("/ban")
    async def ban(user: str, code: int, broker: AppBroker) -> int:
        """Close every connection of `user`, on every worker."""
        return await broker.disconnect(user=user, code=code, reason="banned")

    @app.post("/unsubscribe")
    async def unsubscribe(topic: str, user: str, code: int, broker: AppBroker) -> int:
        """Close `topic` for every connection of `user`, on every worker."""
        return await broker.unsubscribe(topic, user=user, code=code, reason="moved")

    @app.post("/subscribe")
    async def subscribe(client_id: str, topic: str, broker: AppBroker) -> Any:
        """Subscribe the multiplexed socket of `client_id`, wherever it is, to `topic`."""
        try:
            return await broker.subscribe(client_id, topic)
        except Reject as exc:
            return {"refused": exc.status_code}

    @app.get("/leaves")
    async def left_codes() -> list[int]:
        return leaves

    @app.get("/health")
    async def health() -> str:
        return str(os.getpid())

    ws.install(app)
    return app


app = create_app(os.environ.get("WSROUTE_TEST_BROKER", "memory://"))
