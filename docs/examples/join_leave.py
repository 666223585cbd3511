"""Join and leave: who is in the room, told to everyone in it."""

from collections import defaultdict

from fastapi import FastAPI

from wsroute import Broker, Channel, WebSocketStatus, WsRouter

ws = WsRouter()
online: defaultdict[str, set[str]] = defaultdict(
    set
)  # one process only: see "Scaling out"


@ws.join("/rooms/{room}")
async def joined(room: str, name: str, channel: Channel) -> None:
    # Already subscribed: this broadcast reaches the newcomer too.
    online[room].add(name)
    await channel.broadcast(
        {"event": "join", "name": name, "online": sorted(online[room])}
    )


@ws.message("/rooms/{room}")
async def said(data: str, name: str, channel: Channel) -> None:
    await channel.broadcast({"event": "message", "name": name, "text": data})


@ws.leave("/rooms/{room}")
async def left(room: str, name: str, status: WebSocketStatus, broker: Broker) -> None:
    # Runs exactly once per accepted connection, however it ended. The leaver is already
    # unsubscribed, so this reaches the others only.
    online[room].discard(name)
    await broker.broadcast_to(
        f"/rooms/{room}",
        {"event": "leave", "name": name, "code": status.code, "reason": status.reason},
    )


app = FastAPI()
ws.install(app)
