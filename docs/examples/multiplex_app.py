"""Multiplexing: a page that follows several rooms over one WebSocket."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from wsroute import Channel, WebSocketStatus, WsRouter

ws = WsRouter(max_topics=16)  # topics per socket, the connect URL included (default 64)


# Plain handlers: nothing here knows about multiplexing.
@ws.join("/rooms/{room}")
async def joined(room: str, name: str, channel: Channel) -> None:
    await channel.broadcast(f"* {name} joined #{room}")


@ws.message("/rooms/{room}")
async def said(data: str, name: str, channel: Channel) -> None:
    await channel.broadcast(f"{name}: {data}")


@ws.leave("/rooms/{room}")
async def left(room: str, name: str, status: WebSocketStatus, channel: Channel) -> None:
    await channel.broadcast(f"* {name} left #{room}")


app = FastAPI()
ws.install(app)  # also serves the browser client at /wsroute/multiplex.js

PAGE = (Path(__file__).parent / "multiplex.html").read_text()


@app.get("/", response_class=HTMLResponse)
async def index() -> str:
    return PAGE
