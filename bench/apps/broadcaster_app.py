"""encode/broadcaster on Starlette, as its README's chat example does it: each subscriber
holds a ``broadcast.subscribe(room)`` queue and a task that forwards it to the socket.

``BENCH_BROADCAST_URL`` picks the backend: ``memory://`` (default) or ``redis://…``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from broadcaster import Broadcast
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

broadcast = Broadcast(os.environ.get("BENCH_BROADCAST_URL", "memory://"))


async def _forward(subscriber: object, websocket: WebSocket) -> None:
    async for event in subscriber:  # type: ignore[attr-defined]
        await websocket.send_text(event.message)


async def subscriber(websocket: WebSocket) -> None:
    await websocket.accept()
    room = websocket.path_params["room"]
    async with broadcast.subscribe(channel=room) as sub:
        task = asyncio.create_task(_forward(sub, websocket))
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            task.cancel()


async def publisher(websocket: WebSocket) -> None:
    await websocket.accept()
    room = websocket.path_params["room"]
    try:
        while True:
            await broadcast.publish(channel=room, message=await websocket.receive_text())
    except WebSocketDisconnect:
        pass


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with broadcast, contextlib.AsyncExitStack() as stack:
        # Work around a start-up race of broadcaster 0.3.1's Redis backend with redis-py 5+:
        # its listener can start `pubsub.listen()` before the first SUBSCRIBE is registered,
        # return at once and then wait for a `_ready` that is never set again, so nothing is
        # ever received. A second subscription, held for the app's lifetime, re-arms it.
        await stack.enter_async_context(broadcast.subscribe(channel="__bench_keepalive_1"))
        await asyncio.sleep(0.1)
        await stack.enter_async_context(broadcast.subscribe(channel="__bench_keepalive_2"))
        yield


app = Starlette(
    routes=[WebSocketRoute("/fan/{room}", subscriber), WebSocketRoute("/pub/{room}", publisher)],
    lifespan=lifespan,
)
