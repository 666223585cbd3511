"""Messages in and out: `Data` for what arrives, `IntoMessage` and `encode` for what is sent.

An encoded message is the ASGI ``websocket.send`` event itself, built once and handed
unchanged to every subscriber of a broadcast.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import orjson
from pydantic import BaseModel
from starlette.types import Message

from wsroute.errors import InvalidMessage


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
        return value.model_dump(mode="json")
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
        return {"type": "websocket.send", "text": value.model_dump_json()}
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
