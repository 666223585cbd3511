"""Sans-I/O codec of the ``rocket-multiplex`` WebSocket sub-protocol (reference: docs/protocol.md).

Wire format, with ``S`` = U+00B7 MIDDLE DOT (``·``):

* data, both directions, text or binary: ``TOPIC S PAYLOAD`` (the topic prefix is UTF-8);
* control, text frames only, at most 512 UTF-8 bytes: ``S ACTION (S PARAM)* [S]``;
* on a subscription that asked for the ``meta`` option, data frames carry per-frame metadata:
  ``TOPIC S META S PAYLOAD``, where ``META`` is ``name=value`` items joined by ``,`` (possibly
  none). Subscription options (``SUBSCRIBE``'s second parameter, the connect URL's
  ``rocket-multiplex`` query parameter, the ``OK`` reply) use the same item syntax.

Parsers take the ``text`` / ``bytes`` of an ASGI ``websocket.receive`` event and return frozen
dataclasses; encoders return the ``str`` / ``bytes`` to send. Nothing here touches a socket or
an event loop, and nothing imports the rest of wsroute.

Field rules shared by every parser and encoder (and by ``wsroute/static/multiplex-codec.js``):

* fields are split off by position and the remainder is kept whole: a data payload, and the
  close reason of ``UNSUBSCRIBE`` (its third parameter), may contain ``S``;
* a parser drops one trailing ``S`` from a control frame; an encoder therefore appends one when
  the last field is empty or ends with ``S``, so that every encoded frame parses back to the
  same values.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from http import HTTPStatus
from typing import Final, TypeAlias

from wsroute.status import MAX_REASON_BYTES

__all__ = [
    "MAX_CONTROL_BYTES",
    "MAX_TOPIC_BYTES",
    "META",
    "OPTIONS_PARAM",
    "SEP",
    "SEP_BYTES",
    "SUBPROTOCOL",
    "ClientFrame",
    "DataFrame",
    "Err",
    "Invalid",
    "InvalidTopic",
    "Ok",
    "ProtocolError",
    "Reason",
    "ServerFrame",
    "ServerUnsubscribe",
    "Subscribe",
    "Unsubscribe",
    "check_topic",
    "encode_binary",
    "encode_err",
    "encode_invalid",
    "encode_items",
    "encode_meta_binary",
    "encode_meta_text",
    "encode_ok",
    "encode_server_unsubscribe",
    "encode_subscribe",
    "encode_text",
    "encode_unsubscribe",
    "negotiate_subprotocol",
    "parse_client_frame",
    "parse_items",
    "parse_options",
    "parse_server_frame",
    "split_meta",
    "split_topic",
]

SEP: Final[str] = "\u00b7"
"""The field separator, U+00B7 MIDDLE DOT; a URL cannot contain it unescaped."""

SEP_BYTES: Final[bytes] = SEP.encode()
"""``SEP`` as it appears in a binary frame: ``b"\\xc2\\xb7"``."""

MAX_TOPIC_BYTES: Final = 100
"""Longest topic, in UTF-8 bytes."""

MAX_CONTROL_BYTES: Final = 512
"""Longest control frame a client may send, in UTF-8 bytes, leading separator included."""

SUBPROTOCOL: Final = "rocket-multiplex"
"""The ``Sec-WebSocket-Protocol`` token (matched case-insensitively, echoed as offered)."""

OPTIONS_PARAM: Final = "rocket-multiplex"
"""The connect URL's query parameter that carries the connect topic's subscription options."""

META: Final = "meta"
"""The subscription option that turns on per-frame metadata (every extension implies it)."""

MAX_ITEMS_CHARS: Final = 256
"""Longest metadata field of a data frame, in characters (all ASCII)."""

POSITIONS: Final = "positions"
"""The subscription option asking for stream positions: ``epoch``/``offset`` in the OK,
``offset`` on every publication (granted only on topics with history)."""

MAX_OFFSET: Final = 2**53 - 1
"""Largest offset a position may have: exact in JavaScript's numbers too."""

PRESENCE: Final = "presence"
"""The subscription option asking for presence: the member list after the OK, then diffs
(granted only on topics with presence)."""

SINCE: Final = "since"
"""The subscription option asking to recover from a position: ``since=EPOCH:OFFSET``."""


class Reason:
    """The REASON field of ``ERR`` and ``INVALID`` replies, spelled exactly as docs/protocol.md lists them."""

    ALREADY_SUBSCRIBED: Final = "Already Subscribed"
    """``ERR``: SUBSCRIBE to a topic this socket already has."""
    NOT_SUBSCRIBED: Final = "Not Subscribed"
    """``ERR`` for UNSUBSCRIBE, ``INVALID`` for data: the topic is not subscribed."""
    TOO_MANY_TOPICS: Final = "Too Many Topics"
    """``ERR``: SUBSCRIBE beyond the per-socket topic limit (the connect topic counts)."""
    INVALID_TOPIC: Final = "Invalid Topic"
    """``ERR``: the topic fails :func:`check_topic` or :func:`split_topic`."""
    NO_CONTROL_CHARACTER: Final = "No Control Character"
    """``INVALID``: a frame without any separator."""
    CONTROL_TOO_LONG: Final = "Control Message Too Long"
    """``INVALID``: a control frame over :data:`MAX_CONTROL_BYTES`."""
    INVALID_CONTROL: Final = "Invalid Control Message"
    """``INVALID``: unknown action, wrong number of fields, bad close code, binary control."""
    INVALID_UTF8: Final = "Invalid Utf-8"
    """``INVALID``: the topic prefix of a binary frame is not UTF-8."""
    INVALID_METADATA: Final = "Invalid Metadata"
    """``INVALID``: a data frame on a ``meta`` subscription without a valid metadata field."""

    @staticmethod
    def http(status: int) -> str:
        """``ERR`` reason for a refused SUBSCRIBE: ``Reason.http(404) == "404 Not Found"``."""
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return f"{status} {phrase}"


class ProtocolError(Exception):
    """A frame the peer may not send. Reply ``encode_invalid(exc.reason)``; the socket stays up.

    ``reason`` is one of the ``INVALID`` reasons of :class:`Reason`; ``detail`` says what exactly
    was wrong (for logs, not for the wire).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class InvalidTopic(ValueError):
    """A topic that may not be subscribed (reply ``ERR Invalid Topic``); ``why`` says which rule."""

    def __init__(self, topic: str, why: str) -> None:
        self.topic = topic
        self.why = why
        super().__init__(f"invalid topic {topic!r}: {why}")


@dataclass(frozen=True, slots=True)
class DataFrame:
    """``TOPIC·PAYLOAD``: exactly one of ``text`` (text frame) and ``data`` (binary) is set."""

    topic: str
    text: str | None
    data: bytes | None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.data is None):
            raise ValueError("DataFrame needs exactly one of text and data")


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Client ``·SUBSCRIBE·topic[·options]``. The topic is not validated here: see
    :func:`check_topic`; ``options`` are the parsed items (``{}`` without the field)."""

    topic: str
    options: dict[str, str] = dataclass_field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Client ``·UNSUBSCRIBE·topic[·code[·reason]]``; ``code`` is 1000 or 3000-4999 when set."""

    topic: str
    code: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Ok:
    """Server ``·OK·ACTION·PARAMS…``, e.g. ``Ok("SUBSCRIBE", ("/room",))``."""

    action: str
    params: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Err:
    """Server ``·ERR·REASON·ACTION·PARAMS…``, e.g. ``Err("404 Not Found", "SUBSCRIBE", ("/x",))``."""

    reason: str
    action: str
    params: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Invalid:
    """Server ``·INVALID·REASON``: the client sent a frame it may not send."""

    reason: str


@dataclass(frozen=True, slots=True)
class ServerUnsubscribe:
    """Server ``·UNSUBSCRIBE·topic·code·reason``: the server closed that one topic."""

    topic: str
    code: int
    reason: str


ClientFrame: TypeAlias = DataFrame | Subscribe | Unsubscribe
"""What :func:`parse_client_frame` returns."""

ServerFrame: TypeAlias = DataFrame | Ok | Err | Invalid | ServerUnsubscribe
"""What :func:`parse_server_frame` returns."""


# A topic of at most 100 UTF-8 bytes has at most 100 code points, so a separator that ends a
# valid topic starts at index <= 100 in either unit; searching only that window keeps a large
# payload without a separator near its start from being scanned twice on the hot path.
_TEXT_WINDOW: Final = MAX_TOPIC_BYTES + len(SEP)
_BYTES_WINDOW: Final = MAX_TOPIC_BYTES + len(SEP_BYTES)
_RESCAN_FROM: Final = MAX_TOPIC_BYTES + 1

# Whitespace is spelled out instead of using str.isspace() or \s, whose sets differ between
# Python and JavaScript (U+FEFF) and between Unicode versions; multiplex-codec.js uses the same class.
_FORBIDDEN_IN_TOPIC: Final = re.compile(
    "[\x00-\x20\x7f-\x9f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)
# Every printable ASCII character: escaping only non-ASCII keeps existing %XX escapes intact.
_ASCII_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F))

# Actions whose parameter at this index is the rest of the frame (a close reason may hold S).
_REST_PARAM: Final = {"UNSUBSCRIBE": 2}


def _utf8_len(text: str) -> int:
    # surrogatepass: a lone surrogate counts 3 bytes, as the U+FFFD a browser sends for it,
    # and, above all, measuring never raises.
    return len(text.encode("utf-8", "surrogatepass"))


def _strip_trailing(body: str) -> str:
    return body[: -len(SEP)] if body.endswith(SEP) else body


def _missing_separator(later: bool) -> ProtocolError:
    if later:
        # The topic would be over MAX_TOPIC_BYTES, so it can never have been subscribed.
        return ProtocolError(Reason.NOT_SUBSCRIBED, f"topic over {MAX_TOPIC_BYTES} bytes")
    return ProtocolError(Reason.NO_CONTROL_CHARACTER, "no separator in the frame")


def _invalid(detail: str) -> ProtocolError:
    return ProtocolError(Reason.INVALID_CONTROL, detail)


def _parse_text_data(text: str) -> DataFrame:
    i = text.find(SEP, 0, _TEXT_WINDOW)
    if i < 0:
        raise _missing_separator(text.find(SEP, _RESCAN_FROM) >= 0)
    topic = text[:i]
    # Only a topic of more than 25 code points can exceed 100 bytes (4 bytes per code point).
    if len(topic) * 4 > MAX_TOPIC_BYTES and _utf8_len(topic) > MAX_TOPIC_BYTES:
        raise _missing_separator(True)
    return DataFrame(topic, text[i + len(SEP) :], None)


def _parse_binary(data: bytes) -> DataFrame:
    if data.startswith(SEP_BYTES):
        raise _invalid("control frames must be text frames")
    i = data.find(SEP_BYTES, 0, _BYTES_WINDOW)
    if i < 0:
        raise _missing_separator(data.find(SEP_BYTES, _RESCAN_FROM) >= 0)
    try:
        topic = data[:i].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(Reason.INVALID_UTF8, "topic prefix is not UTF-8") from None
    return DataFrame(topic, None, data[i + len(SEP_BYTES) :])


def _parse_code(text: str, *, lowest_app_code: int) -> int:
    # Exactly four ASCII digits: int() alone would also take " 1000", "+1000", "1_000" and
    # non-ASCII digits, none of which the JavaScript side (or a browser) produces.
    if len(text) == 4 and text.isascii() and text.isdigit():
        code = int(text)
        if code == 1000 or lowest_app_code <= code <= 4999:
            return code
    raise _invalid(f"invalid close code {text!r}")


def _params(action: str, tail: str) -> tuple[str, ...]:
    rest_at = _REST_PARAM.get(action)
    if rest_at is None:
        return tuple(tail.split(SEP))
    return tuple(tail.split(SEP, rest_at))


def _parse_client_control(text: str) -> ClientFrame:
    if len(text) > MAX_CONTROL_BYTES or _utf8_len(text) > MAX_CONTROL_BYTES:
        raise ProtocolError(Reason.CONTROL_TOO_LONG, f"over {MAX_CONTROL_BYTES} bytes")
    action, sep, tail = _strip_trailing(text[len(SEP) :]).partition(SEP)
    if action == "SUBSCRIBE":
        if not sep:
            raise _invalid("SUBSCRIBE needs a topic")
        topic, sep, options = tail.partition(SEP)
        if not sep:
            return Subscribe(topic)
        if not options or SEP in options:
            raise _invalid("SUBSCRIBE takes a topic and at most one non-empty options field")
        return Subscribe(topic, parse_options(options))
    if action == "UNSUBSCRIBE":
        if not sep:
            raise _invalid("UNSUBSCRIBE needs a topic")
        topic, sep, tail = tail.partition(SEP)
        if not sep:
            return Unsubscribe(topic)
        code_text, sep, reason = tail.partition(SEP)
        # Codes a browser's WebSocket.close() accepts; the 1001-2999 range is the server's own.
        code = _parse_code(code_text, lowest_app_code=3000)
        # What a close frame (and the browser's WebSocket.close) allows: the leave sees it
        # as it would see a dedicated socket's close.
        if sep and _utf8_len(reason) > MAX_REASON_BYTES:
            raise _invalid(f"close reason over {MAX_REASON_BYTES} bytes")
        return Unsubscribe(topic, code, reason if sep else None)
    raise _invalid(f"unknown client action {action!r}")


def _parse_server_control(text: str) -> ServerFrame:
    # No size limit here: an ERR echoes the client's parameters, so it may legitimately be a
    # few bytes over MAX_CONTROL_BYTES, and a client trusts its own server.
    kind, sep, tail = _strip_trailing(text[len(SEP) :]).partition(SEP)
    if not sep:
        raise _invalid(f"server reply {kind!r} without fields")
    if kind == "OK":
        action, sep, tail = tail.partition(SEP)
        return Ok(action, _params(action, tail) if sep else ())
    if kind == "ERR":
        reason, sep, tail = tail.partition(SEP)
        if not sep:
            raise _invalid("ERR needs a reason and an action")
        action, sep, tail = tail.partition(SEP)
        return Err(reason, action, _params(action, tail) if sep else ())
    if kind == "INVALID":
        if SEP in tail:
            raise _invalid("INVALID takes exactly one reason")
        return Invalid(tail)
    if kind == "UNSUBSCRIBE":
        topic, sep, tail = tail.partition(SEP)
        if not sep:
            raise _invalid("server UNSUBSCRIBE needs a topic and a code")
        code_text, _, reason = tail.partition(SEP)
        return ServerUnsubscribe(topic, _parse_code(code_text, lowest_app_code=1000), reason)
    raise _invalid(f"unknown server reply {kind!r}")


def _check_call(text: str | None, data: bytes | None) -> None:
    # A caller bug (ASGI guarantees exactly one), not a peer's: so not a ProtocolError.
    if (text is None) == (data is None):
        raise TypeError("pass exactly one of text and data")


def parse_client_frame(text: str | None, data: bytes | None) -> ClientFrame:
    """Parse one frame a client sent; pass the event's ``text`` or its ``bytes``, not both.

    Raises :class:`ProtocolError` (reply ``encode_invalid(exc.reason)``) for anything malformed.
    A SUBSCRIBE topic is returned as sent: validate it with :func:`split_topic`. Passing both
    or neither argument is a caller bug and raises ``TypeError``.
    """
    _check_call(text, data)
    if text is None:
        assert data is not None
        return _parse_binary(data)
    if text.startswith(SEP):
        return _parse_client_control(text)
    return _parse_text_data(text)


def parse_server_frame(text: str | None, data: bytes | None) -> ServerFrame:
    """Parse one frame a server sent (for the Python test client); inverse of the encoders.

    Raises :class:`ProtocolError` for anything malformed, ``TypeError`` for a caller bug as in
    :func:`parse_client_frame`.
    """
    _check_call(text, data)
    if text is None:
        assert data is not None
        return _parse_binary(data)
    if text.startswith(SEP):
        return _parse_server_control(text)
    return _parse_text_data(text)


# NAME "=" VALUE or a bare NAME (a flag, read as ""); see docs/protocol.md, "Extensions".
_ITEM: Final = re.compile(r"([a-z][a-z0-9-]{0,31})(?:=([A-Za-z0-9._:~-]{1,64}))?")


def parse_items(text: str, reason: str = Reason.INVALID_METADATA) -> dict[str, str]:
    """Parse ``name=value`` items joined by ``,``: ``"meta,since=e1:17"`` gives
    ``{"meta": "", "since": "e1:17"}`` (a bare name is a flag, read as ``""``).

    ``""`` gives ``{}``. Raises :class:`ProtocolError` with ``reason`` for anything else
    (a name twice, a bad character, an empty item).
    """
    items: dict[str, str] = {}
    if not text:
        return items
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        if match is None:
            raise ProtocolError(reason, f"invalid item {item[:40]!r}")
        name, value = match.group(1), match.group(2) or ""
        if name in items:
            raise ProtocolError(reason, f"{name!r} given twice")
        items[name] = value
    return items


def parse_options(text: str) -> dict[str, str]:
    """Parse a subscription's options field: items that include ``meta``, which every
    extension needs; names this side does not know are kept (and then not granted).

    Without ``meta`` the field is refused (``Invalid Control Message``): it is not an
    options field, e.g. the tail of a topic that held a raw separator.
    """
    options = parse_items(text, Reason.INVALID_CONTROL)
    if META not in options:
        raise _invalid(f"options {text[:40]!r} without {META!r}")
    return options


_EPOCH = re.compile(r"[A-Za-z0-9._~-]{1,32}")


def parse_since(value: str) -> tuple[str, int]:
    """Parse a ``since`` option's value ``EPOCH:OFFSET`` into ``(epoch, offset)``.

    Raises :class:`ProtocolError` (``Invalid Control Message``) unless the epoch is 1-32 of
    ``A-Za-z0-9._~-`` and the offset a decimal integer up to 2**53 - 1 (exact in JavaScript
    too) without leading zeros.
    """
    epoch, colon, offset = value.rpartition(":")
    if (
        not colon
        or _EPOCH.fullmatch(epoch) is None
        or not (offset.isascii() and offset.isdigit())
        or (len(offset) > 1 and offset[0] == "0")
        or len(offset) > 16
        or int(offset) > MAX_OFFSET
    ):
        raise _invalid(f"invalid since position {value[:80]!r}: use EPOCH:OFFSET")
    return epoch, int(offset)


def encode_since(epoch: str, offset: int) -> str:
    """Inverse of :func:`parse_since`; raises `ValueError` for what would not parse back."""
    value = f"{epoch}:{offset}"
    try:
        parse_since(value)
    except ProtocolError:
        raise ValueError(f"invalid position {value!r}") from None
    return value


def encode_items(items: Mapping[str, str | int]) -> str:
    """Inverse of :func:`parse_items`: ``{"reply": 7}`` gives ``"reply=7"``; ``""`` is a flag."""
    parts = []
    for name, value in items.items():
        text = str(value)
        item = f"{name}={text}" if text else name
        if _ITEM.fullmatch(item) is None:
            raise ValueError(f"invalid item {item!r}")
        parts.append(item)
    return ",".join(parts)


def split_meta(text: str | None, data: bytes | None) -> tuple[dict[str, str], str | None, bytes | None]:
    """Split a ``meta`` subscription's payload ``META·PAYLOAD`` into its items and the payload.

    Pass the :class:`DataFrame`'s ``text`` or ``data``; the payload comes back in the same
    slot. Raises :class:`ProtocolError` (``Invalid Metadata``) without a valid field.
    """
    _check_call(text, data)
    if text is not None:
        if text.startswith(SEP):  # no metadata: the common case, no parsing
            return {}, text[len(SEP) :], None
        i = text.find(SEP, 0, MAX_ITEMS_CHARS + 1)
        if i < 0:
            raise ProtocolError(Reason.INVALID_METADATA, "no metadata field before the payload")
        head = text[:i]
        # A request's lone id=N, the next most common field: checked without the regex.
        if head.startswith("id=") and 3 < i <= 19 and head[3:].isascii() and head[3:].isalnum():
            return {"id": head[3:]}, text[i + len(SEP) :], None
        return parse_items(head), text[i + len(SEP) :], None
    assert data is not None
    if data.startswith(SEP_BYTES):
        return {}, None, data[len(SEP_BYTES) :]
    i = data.find(SEP_BYTES, 0, MAX_ITEMS_CHARS + len(SEP_BYTES))  # the whole separator in reach
    if i < 0:
        raise ProtocolError(Reason.INVALID_METADATA, "no metadata field before the payload")
    try:
        head = data[:i].decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError(Reason.INVALID_METADATA, "metadata is not ASCII") from None
    return parse_items(head), None, data[i + len(SEP_BYTES) :]


def check_topic(topic: str) -> None:
    """Raise :class:`InvalidTopic` unless ``topic`` may be subscribed.

    A topic is origin-form (``/path`` or ``/path?query``, not ``//…``, no ``#``, no whitespace
    or control characters), at most 100 UTF-8 bytes, and has no raw ``·``.
    """
    if not topic:
        raise InvalidTopic(topic, "empty")
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidTopic(topic, "contains a lone surrogate") from None
    if size > MAX_TOPIC_BYTES:
        raise InvalidTopic(topic, f"{size} bytes, over the {MAX_TOPIC_BYTES}-byte limit")
    if SEP in topic:
        raise InvalidTopic(topic, f"contains the separator {SEP!r}")
    if not topic.startswith("/"):
        raise InvalidTopic(topic, "not origin-form: must start with '/'")
    if topic.startswith("//"):
        raise InvalidTopic(topic, "not origin-form: '//' would start an authority")
    if "#" in topic:
        raise InvalidTopic(topic, "contains '#': a fragment is never sent to a server")
    if _FORBIDDEN_IN_TOPIC.search(topic):
        raise InvalidTopic(topic, "contains whitespace or a control character")


def _quote_non_ascii(part: str) -> str:
    if part.isascii():
        return part
    # What a browser puts on the wire for a non-ASCII URL; Starlette decodes query strings as
    # latin-1 and would garble raw UTF-8.
    return urllib.parse.quote(part, safe=_ASCII_SAFE)


def split_topic(topic: str) -> tuple[str, bytes, bytes]:
    """Split a topic into the ASGI scope's ``(path, raw_path, query_string)``.

    Validates with :func:`check_topic` first. Like an ASGI server, ``path`` is
    ``urllib.parse.unquote(raw_path)``; non-ASCII characters are percent-encoded in
    ``raw_path`` and ``query_string`` as a browser would. Raises :class:`InvalidTopic` if the
    decoded path contains ``·`` (``%C2%B7`` would otherwise reach a path parameter).

    >>> split_topic("/rooms/caf%C3%A9?x=1")
    ('/rooms/café', b'/rooms/caf%C3%A9', b'x=1')
    """
    check_topic(topic)
    raw, _, query = topic.partition("?")
    raw = _quote_non_ascii(raw)
    path = urllib.parse.unquote(raw)
    if SEP in path:
        raise InvalidTopic(topic, f"its path decodes to one containing {SEP!r}")
    return path, raw.encode("ascii"), _quote_non_ascii(query).encode("ascii")


def negotiate_subprotocol(offered: Iterable[str]) -> str | None:
    """Return the client's own ``rocket-multiplex`` token (any case) to echo, or ``None``."""
    for token in offered:
        if token.isascii() and token.lower() == SUBPROTOCOL:
            return token
    return None


def _check_prefix(topic: str) -> None:
    # An empty topic would turn the frame into a control frame, and a separator would move
    # the split point: both would make the peer read something else.
    if not topic:
        raise InvalidTopic(topic, "empty")
    if SEP in topic:
        raise InvalidTopic(topic, f"contains the separator {SEP!r}")


def _control(*fields: str, rest_last: bool = False) -> str:
    checked = fields[:-1] if rest_last else fields
    for field in checked:
        if SEP in field:
            raise ValueError(f"control field {field!r} contains the separator {SEP!r}")
    frame = SEP + SEP.join(fields)
    last = fields[-1]
    # The parser drops one trailing separator, so give it one to drop.
    if not last or last.endswith(SEP):
        frame += SEP
    return frame


def _check_server_code(code: int) -> str:
    if not 1000 <= code <= 4999:
        raise ValueError(f"close code {code} is outside 1000-4999")
    return str(code)


def _reply_params(action: str, params: tuple[str, ...]) -> bool:
    rest_at = _REST_PARAM.get(action)
    if rest_at is None:
        return False
    if len(params) > rest_at + 1:
        raise ValueError(f"{action} takes at most {rest_at + 1} parameters, got {len(params)}")
    return len(params) == rest_at + 1


def encode_text(topic: str, payload: str) -> str:
    """Text data frame ``topic·payload`` (raises :class:`InvalidTopic` for ``""`` or a ``·``)."""
    _check_prefix(topic)
    return topic + SEP + payload


def encode_binary(topic: str, payload: bytes | bytearray | memoryview) -> bytes:
    """Binary data frame ``topic·payload``, topic UTF-8 (raises like :func:`encode_text`)."""
    _check_prefix(topic)
    return b"".join((topic.encode("utf-8"), SEP_BYTES, payload))


def encode_meta_text(topic: str, items: Mapping[str, str | int], payload: str) -> str:
    """Text data frame of a ``meta`` subscription: ``topic·META·payload``.

    ``encode_meta_text("/room", {"reply": 7}, "ok") == "/room·reply=7·ok"``; ``{}`` gives
    ``"/room··ok"``.
    """
    return encode_text(topic, encode_items(items) + SEP + payload)


def encode_meta_binary(
    topic: str, items: Mapping[str, str | int], payload: bytes | bytearray | memoryview
) -> bytes:
    """Binary data frame of a ``meta`` subscription: ``topic·META·payload`` (see :func:`encode_meta_text`)."""
    return encode_binary(topic, b"".join((encode_items(items).encode("ascii"), SEP_BYTES, payload)))


def encode_ok(action: str, *params: str) -> str:
    """``encode_ok("SUBSCRIBE", "/room") == "·OK·SUBSCRIBE·/room"``.

    Parameters may not contain ``·`` (``ValueError``), except an ``UNSUBSCRIBE`` close reason,
    the third of its at most three parameters.
    """
    rest_last = _reply_params(action, params)
    return _control("OK", action, *params, rest_last=rest_last)


def encode_err(reason: str, action: str, *params: str) -> str:
    """``encode_err("Already Subscribed", "SUBSCRIBE", "/room")``.

    Gives ``"·ERR·Already Subscribed·SUBSCRIBE·/room"``; same field rules as :func:`encode_ok`.
    """
    rest_last = _reply_params(action, params)
    return _control("ERR", reason, action, *params, rest_last=rest_last)


def encode_invalid(reason: str) -> str:
    """``encode_invalid("Not Subscribed") == "·INVALID·Not Subscribed"``."""
    return _control("INVALID", reason)


def encode_server_unsubscribe(topic: str, code: int, reason: str) -> str:
    """``encode_server_unsubscribe("/room", 4000, "kicked") == "·UNSUBSCRIBE·/room·4000·kicked"``.

    ``code`` must be 1000-4999 (``ValueError``); the reason may contain ``·``; an empty reason
    is left out (the parser reads a missing reason as ``""``).
    """
    code_text = _check_server_code(code)
    if not reason:
        return _control("UNSUBSCRIBE", topic, code_text)
    return _control("UNSUBSCRIBE", topic, code_text, reason, rest_last=True)


def encode_subscribe(topic: str, options: Mapping[str, str | int] | None = None) -> str:
    """``encode_subscribe("/room") == "·SUBSCRIBE·/room"`` (the topic is not validated);
    ``encode_subscribe("/room", {"meta": ""}) == "·SUBSCRIBE·/room·meta"``."""
    if SEP in topic:
        raise InvalidTopic(topic, f"contains the separator {SEP!r}")
    if options:
        return _control("SUBSCRIBE", topic, encode_items(options))
    return _control("SUBSCRIBE", topic)


def encode_unsubscribe(topic: str, code: int | None = None, reason: str | None = None) -> str:
    """``encode_unsubscribe("/room", 4000, "bye") == "·UNSUBSCRIBE·/room·4000·bye"``.

    A reason needs a code (``ValueError``). The code is not range-checked, so a test client
    can send what a buggy client would.
    """
    if SEP in topic:
        raise InvalidTopic(topic, f"contains the separator {SEP!r}")
    if code is None:
        if reason is not None:
            raise ValueError("an UNSUBSCRIBE reason needs a code")
        return _control("UNSUBSCRIBE", topic)
    if reason is None:
        return _control("UNSUBSCRIBE", topic, str(code))
    return _control("UNSUBSCRIBE", topic, str(code), reason, rest_last=True)
