"""The Origin policy: allow the pages of another site to connect."""

from fastapi import FastAPI

from wsroute import Channel, WsRouter

# The page at https://app.example.com talks to this API at https://api.example.com.
ws = WsRouter(allowed_origins=["https://app.example.com"])


@ws.message("/echo")
async def echo(data: str, channel: Channel) -> None:
    await channel.send(data)


app = FastAPI()
ws.install(app)
