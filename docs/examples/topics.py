"""The query string is not part of the topic, unless a route opts in."""

from fastapi import FastAPI

from wsroute import Broker, Channel, WsRouter

ws = WsRouter()


@ws.message("/chat")
async def chat(data: str, channel: Channel, token: str) -> None:
    # /chat?token=alice and /chat?token=bob share the topic "/chat": one room.
    await channel.broadcast(data)


@ws.join("/prices", query_in_topic=True)
async def watch(channel: Channel, symbol: str) -> None:
    # /prices?symbol=ACME has the topic "/prices?symbol=ACME" (the query string
    # exactly as the client sent it): each symbol is its own topic.
    await channel.send(f"watching {channel.topic}")


@ws.message("/prices/publish")
async def publish(data: str, broker: Broker, symbol: str) -> None:
    await broker.broadcast_to(f"/prices?symbol={symbol}", f"{symbol} {data}")


app = FastAPI()
ws.install(app)
