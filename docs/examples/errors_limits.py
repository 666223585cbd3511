"""Limits, close codes and exception handlers."""

from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.exceptions import WebSocketException

from wsroute import Channel, InvalidMessage, WsRouter

# --8<-- [start:limits]
ws = WsRouter(
    max_message_size=64 * 1024,  # 64 KiB (default 1 MiB); larger messages close with 1009
    rate_limit=(20, 1.0),  # at most 20 messages per second per connection, else 1008
    max_queue=256,  # outgoing messages queued per connection (default 1024)
    slow_consumer="drop_oldest",  # when that queue is full: drop, don't disconnect
)
# --8<-- [end:limits]


class Move(BaseModel):
    x: int = Field(ge=0, lt=8)
    y: int = Field(ge=0, lt=8)


class GameOver(Exception):
    pass


board: set[tuple[int, int]] = set()


# --8<-- [start:handlers]
@ws.message("/game")
async def play(data: Move, channel: Channel) -> None:
    if (data.x, data.y) in board:
        raise WebSocketException(4409, "square taken")  # closes with exactly this code
    board.add((data.x, data.y))
    if len(board) == 64:
        raise GameOver("board full")
    await channel.broadcast(data)


@ws.message("/upload", max_message_size=4 * 1024 * 1024)  # a bigger limit for one route
async def upload(data: bytes, channel: Channel) -> None:
    await channel.send(f"{len(data)} bytes")


@ws.exception_handler(InvalidMessage)
async def invalid_move(channel: Channel, exc: InvalidMessage) -> None:
    # Instead of closing with 1007: tell the client, keep the connection open.
    await channel.send({"error": exc.reason})


@ws.exception_handler(GameOver)
async def game_over(channel: Channel, exc: GameOver) -> None:
    await channel.close(4000, str(exc))  # instead of 1011 and a logged traceback


# --8<-- [end:handlers]


app = FastAPI()
ws.install(app)
