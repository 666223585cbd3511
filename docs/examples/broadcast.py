"""A rudimentary chat room: every message goes to every client connected to /listen."""

from fastapi import FastAPI

from wsroute import Channel, WsRouter

ws = WsRouter()


@ws.message("/listen")
async def listen(data: str, channel: Channel) -> None:
    await channel.broadcast(
        data
    )  # to every subscriber of "/listen", the sender included


app = FastAPI()
ws.install(app)
