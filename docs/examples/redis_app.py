"""Rooms that work across workers and hosts: the Redis broker.

uvicorn docs.examples.redis_app:app --workers 4
"""

from fastapi import FastAPI

from wsroute import BrokerUnavailable, Channel, WsRouter

ws = WsRouter(broker="redis://127.0.0.1:6379/0")


@ws.message("/rooms/{room}")
async def chat(data: str, channel: Channel) -> None:
    await channel.broadcast(data)  # reaches the room on every worker and host


@ws.exception_handler(BrokerUnavailable)
async def broker_down(channel: Channel, exc: BrokerUnavailable) -> None:
    # Without this handler the connection closes with 1013 (try again later).
    await channel.send({"error": "chat is temporarily unavailable, try again"})


app = FastAPI()
ws.install(app)
