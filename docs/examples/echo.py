"""The guide's echo server: every message goes back to the client that sent it."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from wsroute import Channel, WsRouter

ws = WsRouter()


@ws.message("/echo")
async def echo(data: str, channel: Channel) -> None:
    await channel.send(data)


app = FastAPI()
ws.install(app)

INDEX = (Path(__file__).parent / "echo.html").read_text()


@app.get("/", response_class=HTMLResponse)
async def index() -> str:
    return INDEX
