"""Messages in and out: `Data` and the decoders for what arrives, `IntoMessage` and `encode`
for what is sent, and the frame kinds both imply.

An encoded message is the ASGI ``websocket.send`` event itself, built once and handed
unchanged to every subscriber of a broadcast. The frame-kind functions state the same rules
for a type instead of a value, for the AsyncAPI document: `received_frame_kind` is the rule
`make_decoder` applies, `sent_frame_kind` the one `encode` applies.
"""

from __future__ import annotations

import builtins
import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.types import Message

from wsroute.errors import InvalidMessage, UnsupportedFrame

FrameKind = Literal["text", "binary", "either", "json"]
"""How a message travels: a text frame, a binary frame, either (the raw frame as it came),
or JSON (validated or serialized by pydantic; sent as text, accepted as text or binary)."""


class Data:
    """A received message as it arrived: text or binary, not yet converted.

    Annotate a handler parameter with `Data` to get the raw message whatever its name.
    """

    __slots__ = ("_bytes", "_text")

    def __init__(self, text: str | None = None, data: bytes | None = None) -> None:
        if (text is None) == (data is None):
            raise ValueError("Data needs exactly one of text or data")
        self._text = text
        self._bytes = data

    @property
    def is_text(self) -> bool:
        """True when the message came in a text frame."""
        return self._text is not None

    @property
    def is_binary(self) -> bool:
        """True when the message came in a binary frame."""
        return self._bytes is not None

    def text(self) -> str:
        """The message as text; a binary message is decoded as UTF-8 (`InvalidMessage` if it is not)."""
        if self._text is not None:
            return self._text
        assert self._bytes is not None
        try:
            return self._bytes.decode()
        except UnicodeDecodeError as exc:
            raise InvalidMessage("binary message is not valid UTF-8") from exc

    def bytes(self) -> bytes:
        """The message as bytes; a text message is encoded as UTF-8."""
        if self._bytes is not None:
            return self._bytes
        assert self._text is not None
        return self._text.encode()

    def json(self) -> Any:
        """The message parsed as JSON with orjson (`InvalidMessage` if it is not JSON)."""
        raw = self._text if self._text is not None else self._bytes
        assert raw is not None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidMessage(f"message is not valid JSON: {exc}") from exc

    def into_message(self) -> str | builtins.bytes:
        """Send it back as the same kind of frame it arrived in."""
        return self._text if self._text is not None else self.bytes()

    def __len__(self) -> int:
        return len(self._text) if self._text is not None else len(self.bytes())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Data):
            return self._text == other._text and self._bytes == other._bytes
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._text, self._bytes))

    def __repr__(self) -> str:
        kind, value = ("text", self._text) if self._text is not None else ("binary", self._bytes)
        return f"Data({kind}={value!r})"


@runtime_checkable
class IntoMessage(Protocol):
    """A type that knows how to become a WebSocket message.

    Return `str` for a text frame or `bytes` for a binary frame:

    ```python
    class Ping:
        def into_message(self) -> str:
            return "ping"
    ```
    """

    def into_message(self) -> str | bytes:
        """The message to send: `str` → text frame, `bytes` → binary frame."""
        ...


def text_event(text: str) -> Message:
    """The ASGI event that sends `text` as a text frame."""
    return {"type": "websocket.send", "text": text}


def bytes_event(data: bytes) -> Message:
    """The ASGI event that sends `data` as a binary frame."""
    return {"type": "websocket.send", "bytes": data}


def _json_default(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    raise TypeError


def _dumps(value: object) -> str:
    try:
        return orjson.dumps(value, default=_json_default).decode()
    except TypeError as exc:
        raise TypeError(f"cannot send {type(value).__qualname__} as JSON: {exc}") from exc


_JSON_TYPES = (dict, list, tuple, int, float, bool, type(None), Mapping)


def encode(value: object) -> Message:
    """Turn `value` into the ASGI event that sends it (see `IntoMessage` for the rules).

    `str` → text; `bytes`, `bytearray`, `memoryview` → binary; pydantic models and
    JSON-able values (dict, list, numbers, dataclasses) → JSON text; `IntoMessage` → its
    own choice. Anything else raises `TypeError` naming the type.
    """
    kind = type(value)
    if kind is str:
        return {"type": "websocket.send", "text": value}
    if kind is bytes:
        return {"type": "websocket.send", "bytes": value}
    if kind is dict or kind is list:
        return {"type": "websocket.send", "text": _dumps(value)}
    if isinstance(value, IntoMessage):
        out = value.into_message()
        if isinstance(out, str):
            return {"type": "websocket.send", "text": out}
        if isinstance(out, bytes):
            return {"type": "websocket.send", "bytes": out}
        raise TypeError(
            f"{kind.__qualname__}.into_message() returned {type(out).__qualname__}; "
            "it must return str or bytes"
        )
    if isinstance(value, BaseModel):
        # By alias, as FastAPI sends a response model and as the AsyncAPI schemas say.
        return {"type": "websocket.send", "text": value.model_dump_json(by_alias=True)}
    if isinstance(value, str):
        return {"type": "websocket.send", "text": str(value)}
    if isinstance(value, bytearray | memoryview):
        return {"type": "websocket.send", "bytes": bytes(value)}
    if isinstance(value, _JSON_TYPES) or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        return {"type": "websocket.send", "text": _dumps(value)}
    raise TypeError(
        f"cannot send a {kind.__qualname__}: send str, bytes, a pydantic model, a JSON-able "
        "value, or implement IntoMessage (a method into_message() -> str | bytes)"
    )


def split_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    """``Annotated[T, *metadata]`` as ``(T, [*metadata])``; any other annotation as ``(it, [])``.

    Nested ``Annotated`` is flattened by `typing` itself, so one level is all there is.
    """
    if typing.get_origin(annotation) is Annotated:
        base, *metadata = typing.get_args(annotation)
        return base, metadata
    return annotation, []


def _is_str_or_bytes(tp: Any) -> bool:
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    return union and set(typing.get_args(tp)) == {str, bytes}


def received_frame_kind(annotation: Any) -> FrameKind:
    """The frames a handler whose message is annotated `annotation` accepts (`make_decoder`).

    `str` takes text frames, `bytes` binary frames, ``str | bytes`` and `Data` either, any
    other type JSON. ``Annotated`` metadata constrains the value, not the frame kind.
    """
    base, _ = split_annotated(annotation)
    if base is str:
        return "text"
    if base is bytes:
        return "binary"
    if base is Data or _is_str_or_bytes(base):
        return "either"
    return "json"


def sent_frame_kind(tp: Any) -> FrameKind:
    """The frames `encode` sends a value of type `tp` as.

    The same order of rules as `encode`, read from the type: `Data` and ``str | bytes``
    either; an `IntoMessage` type what its ``into_message`` return annotation names
    (either when it names neither `str` nor `bytes`, or cannot be read); then subclasses of
    `str` text and of `bytes`, `bytearray`, `memoryview` binary; anything else JSON.
    """
    tp, _ = split_annotated(tp)
    if tp is Data or _is_str_or_bytes(tp):
        return "either"
    supertype = getattr(tp, "__supertype__", None)  # NewType("UserId", str)
    if supertype is not None:
        return sent_frame_kind(supertype)
    if typing.get_origin(tp) is Literal:
        # Sent as the values are: all text (the usual `Literal["on", "off"]`) or all bytes.
        kinds = {sent_frame_kind(type(value)) for value in typing.get_args(tp)}
        return kinds.pop() if len(kinds) == 1 else "json"
    if not isinstance(tp, type):
        return "json"
    method = getattr(tp, "into_message", None)
    if method is not None and callable(method):
        try:
            returns = typing.get_type_hints(method).get("return")
        except Exception:  # an unresolvable annotation only costs precision in the docs
            returns = None
        kind = received_frame_kind(returns)
        return kind if kind in ("text", "binary") else "either"
    if issubclass(tp, str):
        return "text"
    if issubclass(tp, bytes | bytearray | memoryview):
        return "binary"
    return "json"


# --- decoding ----------------------------------------------------------------------------

Decoder = Callable[[str | None, bytes | None], Any]
"""Turns a received frame (its text, or its bytes) into the handler's message."""


def _decode_str(text: str | None, data: bytes | None) -> str:
    if text is None:
        raise UnsupportedFrame("this handler takes text messages, not binary")
    return text


def _decode_bytes(text: str | None, data: bytes | None) -> bytes:
    if data is None:
        raise UnsupportedFrame("this handler takes binary messages, not text")
    return data


def _decode_either(text: str | None, data: bytes | None) -> str | bytes:
    return text if text is not None else data  # type: ignore[return-value]


def _decode_data(text: str | None, data: bytes | None) -> Data:
    return Data(text, data)


_RAW_DECODERS: dict[FrameKind, Decoder] = {
    "text": _decode_str,
    "binary": _decode_bytes,
    "either": _decode_either,
}


def _validation_reason(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in err["loc"])
    return f"invalid message: {loc}: {err['msg']}" if loc else f"invalid message: {err['msg']}"


def make_decoder(annotation: Any) -> Decoder:
    """The function that turns a received frame into the handler's message type.

    The frame kinds it takes are `received_frame_kind`'s; a JSON type is validated by
    pydantic. The whole annotation is what validates: ``Annotated`` constraints
    (``Field(ge=0)``, ``max_length``, a union's ``discriminator``) apply exactly as
    ``TypeAdapter(annotation)`` applies them.
    """
    base, metadata = split_annotated(annotation)
    kind = received_frame_kind(annotation)
    if kind != "json":
        raw = _decode_data if base is Data else _RAW_DECODERS[kind]
        if not metadata or base is Data:
            # Data is the frame itself: pydantic has nothing of it to constrain.
            return raw
        # Annotated[str, Field(max_length=...)]: the frame kind of `base`, then its constraints.
        check = TypeAdapter(annotation).validate_python

        def decode_constrained(text: str | None, data: bytes | None) -> Any:
            try:
                return check(raw(text, data))
            except ValidationError as exc:
                raise InvalidMessage(_validation_reason(exc)) from exc

        return decode_constrained
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    validate_json = adapter.validate_json

    def decode(text: str | None, data: bytes | None) -> Any:
        try:
            return validate_json(text if text is not None else data)  # type: ignore[arg-type]
        except ValidationError as exc:
            raise InvalidMessage(_validation_reason(exc)) from exc

    return decode
