"""The guide's examples as one app: an echo page and chat rooms (``/rooms/{room}``).

Run it with ``python -m examples.chat`` and open http://127.0.0.1:8000.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from wsroute import AppBroker, Channel, WebSocketStatus, WsRouter

STATIC = Path(__file__).parent / "static"

ws = WsRouter(broker=os.environ.get("WSROUTE_BROKER", "memory://"))


@ws.message("/echo")
async def echo(data: str, channel: Channel) -> None:
    """The guide's echo: send every message back to its sender."""
    await channel.send(data)


@ws.join("/rooms/{room}")
async def joined(room: str, channel: Channel, name: str = "someone") -> None:
    """Tell the room who arrived (the newcomer sees it too: it is subscribed already)."""
    await channel.broadcast(f"* {name} joined #{room}")


@ws.message("/rooms/{room}")
async def said(data: str, channel: Channel, name: str = "someone") -> None:
    """Everything said in a room goes to everyone in that room, and nowhere else."""
    await channel.broadcast(f"{name}: {data}")


@ws.leave("/rooms/{room}")
async def left(room: str, status: WebSocketStatus, channel: Channel, name: str = "someone") -> None:
    """Tell the room who left."""
    await channel.broadcast(f"* {name} left #{room}")


app = FastAPI(title="wsroute chat example")
ws.install(app)
app.mount("/static", StaticFiles(directory=STATIC), name="static")


@app.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The chat page."""
    return FileResponse(STATIC / "index.html")


@app.get("/echo.html", include_in_schema=False)
async def echo_page() -> FileResponse:
    """The guide's echo page."""
    return FileResponse(STATIC / "echo.html")


@app.post("/rooms/{room}/announce")
async def announce(room: str, text: str, broker: AppBroker) -> dict[str, str]:
    """Post a message into a room from plain HTTP (the Broker works outside handlers)."""
    await broker.broadcast_to(f"/rooms/{room}", f"[announcement] {text}")
    return {"room": room, "text": text}
