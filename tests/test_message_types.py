"""Message annotations are validated in full: what `TypeAdapter(annotation)` accepts from
JSON is what a handler gets, and what it refuses closes the connection with 1007 and a
reason naming the field. Constraints in ``Annotated`` metadata, discriminators, literals,
enums, datetimes and optional models included.
"""

from __future__ import annotations

import datetime
import enum
from typing import Annotated, Any, Literal

import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field, StringConstraints, TypeAdapter, ValidationError
from websockets.exceptions import ConnectionClosed

from support.clients import connect
from wsroute import Channel, InvalidMessage, WsRouter
from wsroute.messages import make_decoder
from wsroute.testing import serve


class Circle(BaseModel):
    type: Literal["circle"]
    radius: float = Field(gt=0)


class Square(BaseModel):
    type: Literal["square"]
    side: float


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


Shape = Annotated[Circle | Square, Field(discriminator="type")]
Count = Annotated[int, Field(ge=0)]
Batch = Annotated[list[int], Field(max_length=2)]
Signal = Literal["go", "stop"]

# (annotation, a valid frame and what it decodes to, an invalid frame, words of the reason)
CASES: list[tuple[str, Any, str, Any, str, list[str]]] = [
    ("constrained int", Count, "3", 3, "-1", ["greater than or equal to 0"]),
    ("constrained float", Annotated[float, Field(lt=1.5)], "1.0", 1.0, "2", ["less than 1.5"]),
    ("constrained list", Batch, "[1, 2]", [1, 2], "[1, 2, 3]", ["at most 2 items"]),
    ("constrained items", list[Annotated[int, Field(ge=0)]], "[0, 1]", [0, 1], "[1, -2]", ["1:", "0"]),
    (
        "constrained dict",
        Annotated[dict[str, int], Field(min_length=1)],
        '{"a": 1}',
        {"a": 1},
        "{}",
        ["at least 1"],
    ),
    (
        "discriminated union",
        Shape,
        '{"type": "square", "side": 2}',
        Square(type="square", side=2),
        '{"type": "triangle"}',
        ["'type'", "'triangle'", "'circle'", "'square'"],
    ),
    (
        "discriminated member's field",
        Shape,
        '{"type": "circle", "radius": 1}',
        Circle(type="circle", radius=1),
        '{"type": "square"}',
        ["square.side", "required"],
    ),
    (
        "discriminated member's constraint",
        Shape,
        '{"type": "circle", "radius": 1}',
        Circle(type="circle", radius=1),
        '{"type": "circle", "radius": -1}',
        ["circle.radius", "greater than 0"],
    ),
    (
        "plain union of models",
        Circle | Square,
        '{"type": "square", "side": 2}',
        Square(type="square", side=2),
        '{"type": "square"}',
        # Without a discriminator pydantic tries every member: the first one's error leads.
        ["Circle.type", "'circle'"],
    ),
    ("literal", Signal, '"go"', "go", '"wait"', ["'go' or 'stop'"]),
    ("enum", Color, '"green"', Color.GREEN, '"blue"', ["'red' or 'green'"]),
    (
        "datetime",
        datetime.datetime,
        '"2024-05-06T07:08:09Z"',
        datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC),
        '"yesterday"',
        ["valid datetime"],
    ),
    ("optional model, null", Circle | None, "null", None, '{"type": "circle"}', ["radius", "required"]),
    (
        "optional model",
        Circle | None,
        '{"type": "circle", "radius": 2}',
        Circle(type="circle", radius=2),
        '{"type": "circle", "radius": 0}',
        ["radius", "greater than 0"],
    ),
    (
        "annotated optional",
        Annotated[Count | None, Field(description="How many.")],
        "null",
        None,
        "-3",
        ["greater than or equal to 0"],
    ),
]
IDS = [case[0] for case in CASES]


@pytest.mark.parametrize(("label", "annotation", "good", "value", "bad", "words"), CASES, ids=IDS)
def test_decoder_accepts_and_refuses_like_the_type_adapter(
    label: str, annotation: Any, good: str, value: Any, bad: str, words: list[str]
) -> None:
    decode = make_decoder(annotation)
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    for frame in ((good, None), (None, good.encode())):  # text or binary JSON alike
        assert decode(*frame) == value == adapter.validate_json(good)
    with pytest.raises(ValidationError):
        adapter.validate_json(bad)
    with pytest.raises(InvalidMessage) as info:
        decode(bad, None)
    reason = info.value.reason
    assert info.value.code == 1007
    assert reason.startswith("invalid message: ")
    for word in words:
        assert word in reason, (label, reason)


def test_discriminated_union_decodes_by_its_tag() -> None:
    """The tag picks the member: a wrong one is not reported against the first member."""
    decode = make_decoder(Shape)
    with pytest.raises(InvalidMessage) as info:
        decode('{"type": "square", "radius": 1}', None)
    assert info.value.reason == "invalid message: square.side: Field required"
    with pytest.raises(InvalidMessage) as missing:
        decode('{"side": 1}', None)
    assert "'type'" in missing.value.reason


def test_raw_frame_types_keep_their_direct_decoders() -> None:
    """str, bytes, str | bytes and Data are not parsed: the frame is the message."""
    assert make_decoder(str)('{"a": 1}', None) == '{"a": 1}'
    assert make_decoder(bytes)(None, b"\x00") == b"\x00"
    assert make_decoder(str | bytes)(None, b"\x01") == b"\x01"
    text = make_decoder(Annotated[str, StringConstraints(max_length=3)])
    assert text("abc", None) == "abc"
    with pytest.raises(InvalidMessage, match="at most 3"):
        text("abcd", None)
    constrained = make_decoder(Annotated[bytes, Field(max_length=2)])
    assert constrained(None, b"ab") == b"ab"
    with pytest.raises(InvalidMessage, match="at most 2"):
        constrained(None, b"abc")
    either = make_decoder(Annotated[str | bytes, Field(min_length=2)])
    assert either("ab", None) == "ab" and either(None, b"cd") == b"cd"
    with pytest.raises(InvalidMessage, match="at least 2"):
        either(None, b"c")


# --- end to end --------------------------------------------------------------------------


def typed_app() -> FastAPI:
    ws = WsRouter()

    @ws.message("/count")
    async def count(data: Count, channel: Channel) -> None:
        await channel.send(str(data + 1))

    @ws.message("/batch")
    async def batch(data: Batch, channel: Channel) -> None:
        await channel.send(str(sum(data)))

    @ws.message("/shape")
    async def shape(data: Shape, channel: Channel) -> None:
        await channel.send(type(data).__name__)

    @ws.message("/signal")
    async def signal(data: Signal, channel: Channel) -> None:
        await channel.send(data.upper())

    @ws.message("/color")
    async def color(data: Color, channel: Channel) -> None:
        await channel.send(data.name)

    @ws.message("/at")
    async def at(data: datetime.datetime, channel: Channel) -> None:
        await channel.send(str(data.year))

    @ws.message("/maybe")
    async def maybe(data: Circle | None, channel: Channel) -> None:
        await channel.send("nothing" if data is None else f"r={data.radius}")

    app = FastAPI()
    ws.install(app)
    return app


E2E: list[tuple[str, str, str, str, str]] = [
    ("/count", "4", "5", "-1", "greater than or equal to 0"),
    ("/batch", "[1, 2]", "3", "[1, 2, 3]", "at most 2 items"),
    (
        "/shape",
        '{"type": "circle", "radius": 1}',
        "Circle",
        '{"type": "circle", "radius": -1}',
        "circle.radius",
    ),
    ("/shape", '{"type": "square", "side": 1}', "Square", '{"type": "hexagon"}', "'type'"),
    ("/signal", '"stop"', "STOP", '"pause"', "'go' or 'stop'"),
    ("/color", '"red"', "RED", '"blue"', "'red' or 'green'"),
    ("/at", '"2024-01-02T00:00:00Z"', "2024", '"soon"', "valid datetime"),
    ("/maybe", "null", "nothing", '{"type": "circle"}', "radius: Field required"),
]


async def test_invalid_messages_close_with_1007_naming_the_field() -> None:
    async with serve(typed_app()) as host:
        for path, good, reply, bad, words in E2E:
            async with connect(f"ws://{host}{path}") as client:
                await client.send(good)
                assert await client.recv() == reply, path
                await client.send(bad)
                with pytest.raises(ConnectionClosed) as info:
                    await client.recv()
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1007, (path, bad)
            assert words in info.value.rcvd.reason, (path, info.value.rcvd.reason)
