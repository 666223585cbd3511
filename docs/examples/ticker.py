"""A send-only stream: the join body runs as long as the client stays."""

import asyncio

from fastapi import FastAPI

from wsroute import Channel, WsRouter

ws = WsRouter()
INTERVAL = 1.0


@ws.join("/clock")
async def clock(channel: Channel) -> None:
    n = 0
    while True:  # cancelled when the client goes away; leave runs after that
        await channel.send({"tick": n})
        n += 1
        await asyncio.sleep(INTERVAL)


app = FastAPI()
ws.install(app)
