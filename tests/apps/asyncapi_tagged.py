"""Tagged models for the AsyncAPI tests: what generated clients need from the schemas.

Tags declared the pydantic way (``type: Literal["said"] = "said"``, and one without a
default), a tagged union without an explicit discriminator (`Event`) and one with
(`Shape`), unions that must not get a discriminator (`Mixed`: a member without the tag;
`Clash`: two members with the same tag), a model sent alone (`Ping`), and a handler that
sends nothing (``Channel[Never]``). ``tests/test_asyncapi_tools.py`` runs Modelina on its
document; the handlers are not meant to be called.
"""

from __future__ import annotations

from typing import Annotated, Literal, Never

from fastapi import FastAPI
from pydantic import BaseModel, Field

from wsroute import Channel, WsRouter


class Said(BaseModel):
    """Someone said something."""

    type: Literal["said"] = "said"
    text: str


class Joined(BaseModel):
    """Someone arrived."""

    type: Literal["joined"] = "joined"
    user: str


class Left(BaseModel):
    """Someone left."""

    type: Literal["left"] = "left"
    user: str
    code: int | None = None


Event = Said | Joined | Left


class Circle(BaseModel):
    """A circle: its tag has no default."""

    kind: Literal["circle"]
    radius: float = Field(gt=0)


class Square(BaseModel):
    """A square."""

    kind: Literal["square"] = "square"
    side: float


Shape = Annotated[Circle | Square, Field(discriminator="kind")]


class Note(BaseModel):
    """No tag at all."""

    text: str


class Echo(BaseModel):
    """The same tag as `Said`."""

    type: Literal["said"] = "said"
    echoed: bool = True


class History(BaseModel):
    """Unions inside a model."""

    events: list[Event]
    shapes: list[Shape] = []
    mixed: list[Said | Note] = []
    clash: list[Said | Echo] = []


class Ping(BaseModel):
    """A tagged model that is not part of a union."""

    type: Literal["ping"] = "ping"


ws = WsRouter(title="Tagged", version="1.0.0", description="Tags that generated clients can use.")


@ws.message("/draw", sends=[History])
async def draw(data: Shape, channel: Channel[Event]) -> None:
    """Draw a `Shape`; the room gets an `Event`, the sender its `History`."""


@ws.message("/ping")
async def ping(data: Event, channel: Channel[Ping]) -> None:
    """Answer any event with a `Ping`."""


@ws.join("/quiet")
async def quiet(channel: Channel[Never]) -> None:
    """Takes its channel to close it, and sends nothing."""


app = FastAPI(title="Tagged app")
ws.install(app)
