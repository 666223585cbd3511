"""A model zoo for ``test_typescript.py``: every shape the TypeScript generator converts.

Nested models, optional and nullable fields, ``Literal`` and ``Enum`` (str and int), tagged
and untagged unions, lists, tuples, dicts, extra fields allowed, ``bytes`` inside a model,
and routes taking ``str``, ``bytes``, ``Data``, a model or a union, with path and query
parameters (an ``Enum`` one; optional ones only); route names that collide (``/items`` and
``/items/{item_id}``) or are reserved words (``/delete``), and a model named like the
generated module's own ``Topic``; a handler that returns a value (a reply). The handlers are
not meant to be called.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from fastapi import FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from wsroute import Channel, Data, WsRouter


class Color(enum.Enum):
    """A color, by name."""

    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Point(BaseModel):
    x: float
    y: float


class Shape(BaseModel):
    """A nested model: points, optional and nullable fields, a dict, a tuple."""

    points: list[Point]
    color: Color = Color.RED
    level: Level | None = None
    label: str | None = Field(default=None, description="Shown next to it; */ is not a comment end.")
    tags: dict[str, int] = {}
    box: tuple[Point, Point] | None = None
    blob: bytes = b""


class Circle(BaseModel):
    kind: Literal["circle"] = "circle"
    radius: float = Field(gt=0)


class Square(BaseModel):
    kind: Literal["square"] = "square"
    side: float


class Free(BaseModel):
    """Extra fields allowed."""

    model_config = ConfigDict(extra="allow")
    name: str


class Topic(BaseModel):
    """Named like the generated module's own `Topic` interface."""

    title: str


Figure = Annotated[Circle | Square, Field(discriminator="kind")]


class Drawing(BaseModel):
    figures: list[Figure]
    shape: Shape | None = None
    either: Circle | Square | None = None


class Ack(BaseModel):
    ok: Literal[True] = True
    count: int


ws = WsRouter(title="Zoo", version="1.0.0")


@ws.message("/draw/{board}")
async def draw(board: str, data: Drawing, channel: Channel[Ack | Shape]) -> None:
    """Draw on a board."""


@ws.message("/figures")
async def figure(data: Circle | Square, channel: Channel[Figure]) -> None:
    """A union received: each member is one message."""


@ws.message("/upload/{name}", sends=[bytes, Ack])
async def upload(name: str, data: bytes, channel: Channel) -> None:
    """Binary in, binary and JSON out."""


@ws.message("/text", sends=[str])
async def text(data: str, channel: Channel) -> None:
    """Text in, text out."""


@ws.message("/raw", sends=[Data])
async def raw(data: Data, channel: Channel) -> None:
    """Any frame in, any frame out."""


@ws.message("/items")
async def items(data: Free, channel: Channel[Topic]) -> None:
    """A model with extra fields in, a model named `Topic` out."""


@ws.message("/items/{item_id}")
async def item(
    item_id: int,
    data: Free,
    channel: Channel[Free],
    page: Annotated[int, Query(ge=1)] = 1,
    tag: Annotated[list[str] | None, Query()] = None,
) -> None:
    """A route whose name collides with `/items`, with query parameters."""


@ws.message("/delete")
async def delete(data: Topic, channel: Channel[Topic]) -> None:
    """A reserved word as a route name."""


@ws.message("/paint/{color}")
async def paint(color: Color, data: Point, channel: Channel[Point]) -> None:
    """An `Enum` path parameter."""


@ws.message("/search")
async def search(data: str, channel: Channel[list[Topic]], q: Annotated[str | None, Query()] = None) -> None:
    """Optional query parameters only; a list of models sent."""


class Answer(BaseModel):
    text: str
    score: float | None = None


@ws.message("/ask")
async def ask(data: Topic) -> Answer:
    """A handler that returns its answer: the route takes requests."""
    return Answer(text=data.title)


@ws.join("/watch", sends=[Shape])
async def watch(channel: Channel) -> None:
    """Only the server speaks here."""


app = FastAPI(title="Model zoo")
ws.install(app)
