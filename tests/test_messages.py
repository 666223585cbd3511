"""Unit tests: what `encode` makes of each value, the frame kinds stated for types, and `Data`."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from wsroute import Data, IntoMessage, InvalidMessage
from wsroute.messages import FrameKind, encode, received_frame_kind, sent_frame_kind


class Point(BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class Pair:
    a: int
    b: str


class Ping:
    def into_message(self) -> str:
        return "ping"


class Blob:
    def into_message(self) -> bytes:
        return b"\x00blob"


class Liar:
    def into_message(self) -> int:
        return 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hi", {"text": "hi"}),
        (b"\x01", {"bytes": b"\x01"}),
        (bytearray(b"ab"), {"bytes": b"ab"}),
        (memoryview(b"cd"), {"bytes": b"cd"}),
        ({"a": [1, 2]}, {"text": '{"a":[1,2]}'}),
        ([1, "x"], {"text": '[1,"x"]'}),
        (Point(x=1, y=2), {"text": '{"x":1,"y":2}'}),
        ({"p": Point(x=1, y=2)}, {"text": '{"p":{"x":1,"y":2}}'}),
        (Pair(1, "z"), {"text": '{"a":1,"b":"z"}'}),
        (42, {"text": "42"}),
        (None, {"text": "null"}),
        (Ping(), {"text": "ping"}),
        (Blob(), {"bytes": b"\x00blob"}),
        (Data(text="t"), {"text": "t"}),
        (Data(data=b"b"), {"bytes": b"b"}),
    ],
)
def test_encode(value: object, expected: dict[str, object]) -> None:
    assert encode(value) == {"type": "websocket.send", **expected}


class Name(str):
    pass


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("hi", "text"),
        (Name("n"), "text"),
        (b"\x01", "binary"),
        (bytearray(b"ab"), "binary"),
        (memoryview(b"cd"), "binary"),
        ({"a": 1}, "json"),
        ([1], "json"),
        (Point(x=1, y=2), "json"),
        (Pair(1, "z"), "json"),
        (42, "json"),
        (Ping(), "text"),
        (Blob(), "binary"),
        (Data(text="t"), "either"),
    ],
)
def test_sent_frame_kind_is_what_encode_sends(value: object, kind: FrameKind) -> None:
    # The AsyncAPI document reads sent_frame_kind; what clients get is encode's.
    assert sent_frame_kind(type(value)) == kind
    if kind != "either":
        assert ("bytes" in encode(value)) == (kind == "binary")


@pytest.mark.parametrize(
    ("annotation", "kind"),
    [
        (str, "text"),
        (Annotated[str, Field(max_length=3)], "text"),
        (bytes, "binary"),
        (str | bytes, "either"),
        (Data, "either"),
        (Point, "json"),
        (bytearray, "json"),
        (Name, "json"),
    ],
)
def test_received_frame_kind(annotation: Any, kind: FrameKind) -> None:
    assert received_frame_kind(annotation) == kind


def test_encode_unsupported_type_names_it() -> None:
    class Opaque:
        pass

    with pytest.raises(TypeError, match="Opaque"):
        encode(Opaque())
    with pytest.raises(TypeError, match=r"Liar.into_message\(\) returned int"):
        encode(Liar())
    with pytest.raises(TypeError, match="dict"):
        encode({"x": object()})


def test_into_message_is_a_runtime_protocol() -> None:
    assert isinstance(Ping(), IntoMessage)
    assert not isinstance("str", IntoMessage)


def test_data_accessors() -> None:
    text = Data(text='{"a": 1}')
    assert text.is_text and not text.is_binary
    assert text.text() == '{"a": 1}' and text.bytes() == b'{"a": 1}' and text.json() == {"a": 1}
    binary = Data(data=b"\xff")
    assert binary.is_binary
    with pytest.raises(InvalidMessage, match="UTF-8"):
        binary.text()
    with pytest.raises(InvalidMessage, match="JSON"):
        Data(text="nope").json()
    with pytest.raises(ValueError):
        Data()
    assert Data(text="a") == Data(text="a") != Data(data=b"a")
