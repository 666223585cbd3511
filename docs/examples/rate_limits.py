"""Rate limits per route, and an exception handler that keeps a connection over its limit."""

from fastapi import FastAPI

from wsroute import Channel, RateLimited, WsRouter

ws = WsRouter(rate_limit=(20, 1.0))  # every connection: 20 messages a second, in bursts of 20


@ws.message("/chat/{room}", rate_limit=(10, 60.0))  # this route: 10 a minute instead
async def chat(data: str, channel: Channel) -> None:
    await channel.broadcast(data)


@ws.message("/typing/{room}")  # the router's 20 a second
async def typing(data: str, channel: Channel) -> None:
    await channel.broadcast(data)


@ws.exception_handler(RateLimited)
async def over_the_limit(channel: Channel, exc: RateLimited) -> None:
    # The message is already dropped. Say so and keep the connection (or topic) open,
    # instead of the default close with 1008.
    await channel.send({"error": exc.reason})


app = FastAPI()
ws.install(app)
