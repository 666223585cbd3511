"""What a message can be: text, bytes, raw Data, or anything pydantic validates."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field

from wsroute import Channel, Data, WsRouter

ws = WsRouter()


# --8<-- [start:model]
class Move(BaseModel):
    x: int
    y: int
    at: datetime | None = None


@ws.message("/game")
async def play(data: Move, channel: Channel[Move]) -> None:
    # '{"x": 1, "y": 2}' arrives as Move(x=1, y=2); it is sent back as JSON text.
    await channel.send(Move(x=data.y, y=data.x, at=data.at))


# --8<-- [end:model]


# --8<-- [start:kinds]
@ws.message("/upload")
async def upload(data: bytes, channel: Channel) -> None:  # binary frames only
    await channel.send(f"{len(data)} bytes")


@ws.message("/any")
async def either(data: str | bytes, channel: Channel) -> None:  # text or binary
    await channel.send(data)  # goes back as the same kind of frame


@ws.message("/raw")
async def raw(
    message: Data, channel: Channel
) -> None:  # annotated Data: the message, any name
    kind = "text" if message.is_text else "binary"
    await channel.send({"kind": kind, "length": len(message.bytes())})


@ws.message("/sum")
async def total(data: list[int], channel: Channel) -> None:  # '[1, 2, 3]'
    await channel.send(str(sum(data)))


# --8<-- [end:kinds]


# --8<-- [start:constraints]
class Join(BaseModel):
    type: Literal["join"]
    room: str = Field(max_length=20)


class Say(BaseModel):
    type: Literal["say"]
    text: str


# The "type" field picks the model; a wrong or missing tag is named in the close reason.
Command = Annotated[Join | Say, Field(discriminator="type")]


@ws.message("/commands")
async def command(data: Command, channel: Channel) -> None:
    if isinstance(data, Join):
        await channel.send(f"joined {data.room}")
    else:
        await channel.send(f"said {data.text}")


@ws.message("/volume")
async def volume(data: Annotated[int, Field(ge=0, le=10)], channel: Channel) -> None:
    await channel.send(f"volume {data}")  # '11' closes the connection with 1007


# --8<-- [end:constraints]


app = FastAPI()
ws.install(app)
