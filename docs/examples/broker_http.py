"""The Broker: publish from a handler, an HTTP route or a background task."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import BackgroundTasks, FastAPI

from wsroute import AppBroker, Broker, Channel, WsRouter

ws = WsRouter()
CLOCK_INTERVAL = 60.0


# --8<-- [start:handler]
@ws.message("/rooms/{room}")
async def said(data: str, channel: Channel) -> None:
    await channel.broadcast(data)


@ws.join("/inbox/{user}")
async def inbox(user: str, channel: Channel) -> None:
    await channel.send(f"inbox of {user}")


@ws.message("/dm/{sender}")
async def direct_message(data: str, sender: str, to: str, broker: Broker) -> None:
    # A Broker parameter publishes to any topic, not only this connection's.
    await broker.broadcast_to(f"/inbox/{to}", f"{sender}: {data}")


# --8<-- [end:handler]


# --8<-- [start:background]
async def clock(broker: Broker) -> None:
    while True:
        await asyncio.sleep(CLOCK_INTERVAL)
        await broker.broadcast_to("/rooms/lobby", "tick")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    task = asyncio.create_task(
        clock(ws.broker)
    )  # the router's broker, started by install()
    yield
    task.cancel()


app = FastAPI(lifespan=lifespan)
ws.install(app)
# --8<-- [end:background]


# --8<-- [start:http]
@app.post("/rooms/{room}/announce")
async def announce(room: str, text: str, broker: AppBroker) -> dict[str, str]:
    await broker.broadcast_to(f"/rooms/{room}", f"[announcement] {text}")
    return {"sent": text}


@app.post("/rooms/{room}/later")
async def announce_later(
    room: str, text: str, broker: AppBroker, tasks: BackgroundTasks
) -> None:
    tasks.add_task(
        broker.broadcast_to, f"/rooms/{room}", f"[later] {text}"
    )  # after the response


# --8<-- [end:http]
