"""Tests of the rocket-multiplex codec: golden fixtures plus hypothesis properties.

``tests/fixtures/multiplex_frames.json`` is shared with ``tests/js/codec.test.mjs``. It is a list
of cases, one per line:

* ``{"name", "direction": "client" | "server", "kind": "text" | "binary", "frame" | "frame_hex",
  "expect": {...}, "noncanonical"?: true}`` — ``frame`` is parsed as a client or server frame.
  ``expect.type`` is ``data`` (``topic`` and ``text`` or ``data_hex``), ``subscribe``
  (``topic``), ``unsubscribe`` (``topic``, ``code``, ``reason``, null when absent), ``ok``
  (``action``, ``params``), ``err`` (``reason``, ``action``, ``params``), ``invalid``
  (``reason``), ``server_unsubscribe`` (``topic``, ``code``, ``reason``) or ``error`` (the
  parser raises ``ProtocolError`` with ``reason``). Unless ``noncanonical``, encoding the
  expected value gives back ``frame`` exactly.
  A ``subscribe`` with an options field has ``options`` (the parsed items) too.
* ``{"name", "direction": "topic", "topic", "expect": {"type": "valid" | "invalid_topic"}}`` —
  what ``check_topic`` says.
* ``{"name", "direction": "meta", "kind", "payload" | "payload_hex", "expect"}`` — the payload
  of a data frame on a ``meta`` subscription, split by ``split_meta``: ``expect.type`` is
  ``meta`` (``items``, and ``text`` or ``data_hex``) or ``error``. Encoding the items and the
  payload gives back ``payload`` exactly.
* ``{"name", "direction": "since", "value", "expect"}`` — a ``since`` option's value read by
  ``parse_since``: ``expect.type`` is ``position`` (``epoch``, ``offset``) or ``error``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsroute.multiplex.codec import (
    MAX_CONTROL_BYTES,
    MAX_TOPIC_BYTES,
    SEP,
    SEP_BYTES,
    SUBPROTOCOL,
    DataFrame,
    Err,
    Invalid,
    InvalidTopic,
    Ok,
    ProtocolError,
    Reason,
    ServerUnsubscribe,
    Subscribe,
    Unsubscribe,
    check_topic,
    encode_binary,
    encode_err,
    encode_invalid,
    encode_items,
    encode_meta_binary,
    encode_meta_text,
    encode_ok,
    encode_server_unsubscribe,
    encode_since,
    encode_subscribe,
    encode_text,
    encode_unsubscribe,
    negotiate_subprotocol,
    parse_client_frame,
    parse_server_frame,
    parse_since,
    split_meta,
    split_topic,
)
from wsroute.status import MAX_REASON_BYTES

FIXTURES = Path(__file__).parent / "fixtures" / "multiplex_frames.json"
CASES: list[dict[str, Any]] = json.loads(FIXTURES.read_text(encoding="utf-8"))
FRAME_CASES = [c for c in CASES if c["direction"] in ("client", "server")]
TOPIC_CASES = [c for c in CASES if c["direction"] == "topic"]
META_CASES = [c for c in CASES if c["direction"] == "meta"]
SINCE_CASES = [c for c in CASES if c["direction"] == "since"]

Frame = DataFrame | Subscribe | Unsubscribe | Ok | Err | Invalid | ServerUnsubscribe


def _frame_args(case: dict[str, Any]) -> tuple[str | None, bytes | None]:
    if case["kind"] == "binary":
        return None, bytes.fromhex(case["frame_hex"])
    return case["frame"], None


def _expected(expect: dict[str, Any]) -> Frame:
    kind = expect["type"]
    if kind == "data":
        if "data_hex" in expect:
            return DataFrame(expect["topic"], None, bytes.fromhex(expect["data_hex"]))
        return DataFrame(expect["topic"], expect["text"], None)
    if kind == "subscribe":
        return Subscribe(expect["topic"], expect.get("options", {}))
    if kind == "unsubscribe":
        return Unsubscribe(expect["topic"], expect["code"], expect["reason"])
    if kind == "ok":
        return Ok(expect["action"], tuple(expect["params"]))
    if kind == "err":
        return Err(expect["reason"], expect["action"], tuple(expect["params"]))
    if kind == "invalid":
        return Invalid(expect["reason"])
    if kind == "server_unsubscribe":
        return ServerUnsubscribe(expect["topic"], expect["code"], expect["reason"])
    raise AssertionError(f"unknown expect type {kind!r}")


def _encode(frame: Frame, binary: bool) -> str | bytes:
    match frame:
        case DataFrame(topic, text, None) if text is not None:
            return encode_text(topic, text)
        case DataFrame(topic, None, data) if data is not None:
            return encode_binary(topic, data)
        case Subscribe(topic, options):
            return encode_subscribe(topic, options)
        case Unsubscribe(topic, code, reason):
            return encode_unsubscribe(topic, code, reason)
        case Ok(action, params):
            return encode_ok(action, *params)
        case Err(reason, action, params):
            return encode_err(reason, action, *params)
        case Invalid(reason):
            return encode_invalid(reason)
        case ServerUnsubscribe(topic, code, reason):
            return encode_server_unsubscribe(topic, code, reason)
    raise AssertionError(f"cannot encode {frame!r}")


def _parse(direction: str, text: str | None, data: bytes | None) -> Frame:
    if direction == "client":
        return parse_client_frame(text, data)
    return parse_server_frame(text, data)


# ------------------------------------------------------------------------------ golden


def test_fixture_names_are_unique_and_cover_every_reason() -> None:
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names))
    errors = {c["expect"]["reason"] for c in FRAME_CASES if c["expect"]["type"] == "error"}
    parser_reasons = {
        Reason.NOT_SUBSCRIBED,
        Reason.NO_CONTROL_CHARACTER,
        Reason.CONTROL_TOO_LONG,
        Reason.INVALID_CONTROL,
        Reason.INVALID_UTF8,
    }
    assert errors == parser_reasons
    replies = {c["expect"].get("reason") for c in FRAME_CASES if c["direction"] == "server"}
    assert {
        Reason.ALREADY_SUBSCRIBED,
        Reason.NOT_SUBSCRIBED,
        Reason.TOO_MANY_TOPICS,
        Reason.INVALID_TOPIC,
        "404 Not Found",
        *parser_reasons,
    } <= replies


@pytest.mark.parametrize("case", FRAME_CASES, ids=lambda c: c["name"])
def test_golden_frame(case: dict[str, Any]) -> None:
    text, data = _frame_args(case)
    expect = case["expect"]
    if expect["type"] == "error":
        with pytest.raises(ProtocolError) as info:
            _parse(case["direction"], text, data)
        assert info.value.reason == expect["reason"]
        return
    frame = _parse(case["direction"], text, data)
    assert frame == _expected(expect)
    encoded = _encode(frame, case["kind"] == "binary")
    if not case.get("noncanonical"):
        assert encoded == (data if text is None else text)
    # Canonical or not, what the encoder makes parses back to the same value.
    if isinstance(encoded, bytes):
        assert _parse(case["direction"], None, encoded) == frame
    else:
        assert _parse(case["direction"], encoded, None) == frame


DATA_CASES = [
    c
    for c in FRAME_CASES
    if c["kind"] == "binary" or not c["frame"].startswith(SEP)  # controls differ by direction
]


@pytest.mark.parametrize("case", DATA_CASES, ids=lambda c: c["name"])
def test_data_frames_parse_the_same_in_both_directions(case: dict[str, Any]) -> None:
    text, data = _frame_args(case)
    results: list[object] = []
    for parse in (parse_client_frame, parse_server_frame):
        try:
            results.append(parse(text, data))
        except ProtocolError as exc:
            results.append(exc.reason)
    assert results[0] == results[1]


@pytest.mark.parametrize("case", META_CASES, ids=lambda c: c["name"])
def test_golden_metadata(case: dict[str, Any]) -> None:
    binary = case["kind"] == "binary"
    payload = bytes.fromhex(case["payload_hex"]) if binary else case["payload"]
    text, data = (None, payload) if binary else (payload, None)
    expect = case["expect"]
    if expect["type"] == "error":
        with pytest.raises(ProtocolError) as info:
            split_meta(text, data)  # type: ignore[arg-type]
        assert info.value.reason == expect["reason"] == Reason.INVALID_METADATA
        return
    items, text_out, data_out = split_meta(text, data)  # type: ignore[arg-type]
    assert items == expect["items"]
    if binary:
        assert text_out is None and data_out == bytes.fromhex(expect["data_hex"])
        frame = encode_meta_binary("/t", items, data_out)
        assert frame == b"/t" + SEP_BYTES + payload
    else:
        assert data_out is None and text_out == expect["text"]
        assert text_out is not None
        assert encode_meta_text("/t", items, text_out) == "/t" + SEP + payload
        assert encode_items(items) + SEP + text_out == payload


def test_metadata_cases_cover_every_item_the_extensions_use() -> None:
    names = {name for c in META_CASES if c["expect"]["type"] == "meta" for name in c["expect"]["items"]}
    assert {"id", "reply", "error", "offset", "epoch"} <= names


@pytest.mark.parametrize("case", SINCE_CASES, ids=lambda c: c["name"])
def test_golden_since(case: dict[str, Any]) -> None:
    expect = case["expect"]
    if expect["type"] == "error":
        with pytest.raises(ProtocolError) as info:
            parse_since(case["value"])
        assert info.value.reason == expect["reason"]
        with pytest.raises(ValueError):
            encode_since(*case["value"].rpartition(":")[::2])  # type: ignore[arg-type]
        return
    assert parse_since(case["value"]) == (expect["epoch"], expect["offset"])
    assert encode_since(expect["epoch"], expect["offset"]) == case["value"]


@pytest.mark.parametrize("case", TOPIC_CASES, ids=lambda c: c["name"])
def test_golden_topic(case: dict[str, Any]) -> None:
    if case["expect"]["type"] == "valid":
        check_topic(case["topic"])
    else:
        with pytest.raises(InvalidTopic) as info:
            check_topic(case["topic"])
        assert info.value.topic == case["topic"]
        assert info.value.why


# ------------------------------------------------------------------------------ API details


def test_constants() -> None:
    assert SEP == "\u00b7"
    assert SEP_BYTES == b"\xc2\xb7"
    assert (MAX_TOPIC_BYTES, MAX_CONTROL_BYTES, SUBPROTOCOL) == (100, 512, "rocket-multiplex")


def test_encoders_match_the_spec_examples() -> None:
    assert encode_ok("SUBSCRIBE", "/room") == "·OK·SUBSCRIBE·/room"
    assert encode_err("Already Subscribed", "SUBSCRIBE", "/room") == (
        "·ERR·Already Subscribed·SUBSCRIBE·/room"
    )
    assert encode_invalid("Not Subscribed") == "·INVALID·Not Subscribed"
    assert encode_server_unsubscribe("/room", 4000, "kicked") == "·UNSUBSCRIBE·/room·4000·kicked"
    assert encode_subscribe("/room") == "·SUBSCRIBE·/room"
    assert encode_unsubscribe("/room") == "·UNSUBSCRIBE·/room"
    assert encode_unsubscribe("/room", 4000) == "·UNSUBSCRIBE·/room·4000"
    assert encode_unsubscribe("/room", 4000, "bye") == "·UNSUBSCRIBE·/room·4000·bye"
    assert encode_text("/room", "a·b") == "/room·a·b"
    assert encode_binary("/café", b"\x00") == "/café".encode() + b"\xc2\xb7\x00"
    assert encode_binary("/r", bytearray(b"ab")) == b"/r\xc2\xb7ab"
    assert encode_binary("/r", memoryview(b"ab")) == b"/r\xc2\xb7ab"


def test_reason_constants_and_http_reasons() -> None:
    assert Reason.CONTROL_TOO_LONG == "Control Message Too Long"
    assert Reason.INVALID_UTF8 == "Invalid Utf-8"
    assert Reason.http(401) == "401 Unauthorized"
    assert Reason.http(403) == "403 Forbidden"
    assert Reason.http(404) == "404 Not Found"
    assert Reason.http(499) == "499 Error"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: encode_text("", "x"), InvalidTopic),
        (lambda: encode_text("/a·b", "x"), InvalidTopic),
        (lambda: encode_binary("", b"x"), InvalidTopic),
        (lambda: encode_subscribe("/a·b"), InvalidTopic),
        (lambda: encode_unsubscribe("/a·b"), InvalidTopic),
        (lambda: encode_unsubscribe("/a", None, "why"), ValueError),
        (lambda: encode_ok("SUBSCRIBE", "/a·b"), ValueError),
        (lambda: encode_ok("UNSUBSCRIBE", "/a", "4000", "r", "extra"), ValueError),
        (lambda: encode_err("Not·Found", "SUBSCRIBE", "/a"), ValueError),
        (lambda: encode_invalid("a·b"), ValueError),
        (lambda: encode_server_unsubscribe("/a", 999, "x"), ValueError),
        (lambda: encode_server_unsubscribe("/a", 5000, "x"), ValueError),
        (lambda: encode_server_unsubscribe("/a·b", 4000, "x"), ValueError),
    ],
)
def test_encoders_refuse_what_would_not_parse_back(call: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()


def test_unsubscribe_echo_keeps_a_reason_with_separators() -> None:
    frame = encode_err(Reason.NOT_SUBSCRIBED, "UNSUBSCRIBE", "/room", "4000", "a·b·")
    assert frame == "·ERR·Not Subscribed·UNSUBSCRIBE·/room·4000·a·b··"
    assert parse_server_frame(frame, None) == Err(
        Reason.NOT_SUBSCRIBED, "UNSUBSCRIBE", ("/room", "4000", "a·b·")
    )


def test_parsers_need_exactly_one_argument() -> None:
    for parse in (parse_client_frame, parse_server_frame):
        with pytest.raises(TypeError):
            parse(None, None)
        with pytest.raises(TypeError):
            parse("/a·b", b"/a\xc2\xb7b")


def test_protocol_error_is_readable() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_frame("·FOO·x", None)
    assert info.value.reason == Reason.INVALID_CONTROL
    assert str(info.value) == "Invalid Control Message: unknown client action 'FOO'"
    assert str(ProtocolError(Reason.INVALID_UTF8)) == "Invalid Utf-8"


def test_invalid_topic_is_a_readable_value_error() -> None:
    with pytest.raises(ValueError, match=r"invalid topic 'room': not origin-form") as info:
        check_topic("room")
    assert isinstance(info.value, InvalidTopic)
    assert info.value.why == "not origin-form: must start with '/'"


def test_data_frame_needs_exactly_one_payload() -> None:
    with pytest.raises(ValueError):
        DataFrame("/a", None, None)
    with pytest.raises(ValueError):
        DataFrame("/a", "x", b"x")


def test_check_topic_rejects_lone_surrogates() -> None:
    with pytest.raises(InvalidTopic, match="surrogate"):
        check_topic("/a\ud800")


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("/", ("/", b"/", b"")),
        ("/rooms/lobby", ("/rooms/lobby", b"/rooms/lobby", b"")),
        ("/rooms/lobby?token=a%20b&x", ("/rooms/lobby", b"/rooms/lobby", b"token=a%20b&x")),
        ("/rooms/caf%C3%A9?", ("/rooms/café", b"/rooms/caf%C3%A9", b"")),
        ("/salle/café?q=é", ("/salle/café", b"/salle/caf%C3%A9", b"q=%C3%A9")),
        ("/a%2Fb", ("/a/b", b"/a%2Fb", b"")),
        ("/a%ZZ%", ("/a%ZZ%", b"/a%ZZ%", b"")),
        ("/a?b?c", ("/a", b"/a", b"b?c")),
        # A "·" in the query is not in the path, so no path parameter can carry it.
        ("/a?x=%C2%B7", ("/a", b"/a", b"x=%C2%B7")),
    ],
)
def test_split_topic(topic: str, expected: tuple[str, bytes, bytes]) -> None:
    assert split_topic(topic) == expected


@pytest.mark.parametrize("topic", ["/rooms/%C2%B7", "/rooms/%c2%b7x", "/a·b", "rooms", ""])
def test_split_topic_rejects(topic: str) -> None:
    with pytest.raises(InvalidTopic):
        split_topic(topic)


def test_negotiate_subprotocol_echoes_the_clients_token() -> None:
    assert negotiate_subprotocol(["chat", "Rocket-Multiplex"]) == "Rocket-Multiplex"
    assert negotiate_subprotocol(["rocket-multiplex"]) == "rocket-multiplex"
    assert negotiate_subprotocol(["chat"]) is None
    assert negotiate_subprotocol([]) is None
    # Unicode case folding must not turn a non-ASCII token into the ASCII one.
    assert negotiate_subprotocol(["rocket-multİplex"]) is None


# ------------------------------------------------------------------------------ properties

BOUNDED = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Everything, lone surrogates included (the default text strategy leaves them out).
any_char = st.characters(codec=None, exclude_categories=())
# Fragments that steer random frames into the interesting branches of the parsers.
pieces = st.sampled_from(
    [
        SEP,
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "OK",
        "ERR",
        "INVALID",
        "/room",
        "1000",
        "4000",
        "5000",
        "é",
        "/" + "a" * 99,
        "x" * 120,
    ]
)
frames = st.lists(st.one_of(pieces, st.text(any_char, max_size=8)), max_size=12).map("".join)
control_frames = st.builds(
    lambda action, params, trailing: SEP.join(["", action, *params]) + trailing,
    st.sampled_from(["SUBSCRIBE", "UNSUBSCRIBE", "OK", "ERR", "INVALID"]) | frames,
    st.lists(st.one_of(pieces, frames), max_size=5),
    st.sampled_from(["", SEP, SEP + SEP, "é" * 300]),
)
binary_frames = st.lists(
    st.one_of(st.sampled_from([SEP_BYTES, b"/room", b"\xff", b"\xc2", b"a" * 101]), st.binary()),
    max_size=8,
).map(b"".join)


def _valid_topic(topic: str) -> bool:
    try:
        check_topic(topic)
    except InvalidTopic:
        return False
    return True


topic_chars = st.characters(
    codec="utf-8",
    exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
    exclude_characters="#\u00b7",
)
topics = (
    st.tuples(
        st.text(
            st.one_of(st.sampled_from("abz09-._~%/!$&'()*+,;=:@"), topic_chars),
            max_size=30,
        ),
        st.none() | st.text(st.one_of(st.sampled_from("abz09=&?/%"), topic_chars), max_size=20),
    )
    .map(lambda t: "/" + t[0] + ("" if t[1] is None else "?" + t[1]))
    .filter(_valid_topic)
)
fields = st.text(any_char, max_size=20).filter(lambda s: SEP not in s)
reasons = st.text(st.one_of(st.just(SEP), any_char), max_size=60)
err_reasons = st.sampled_from([Reason.ALREADY_SUBSCRIBED, Reason.TOO_MANY_TOPICS, "404 Not Found"])
client_codes = st.one_of(st.just(1000), st.integers(3000, 4999))


def _utf8_bytes(text: str) -> int:
    # A lone surrogate counts 3 bytes (the U+FFFD a browser would send for it).
    return len(text.encode("utf-8", "surrogatepass"))


def _spellings(frame: Frame, canonical: str) -> set[str]:
    """Every text that may parse to `frame`, given its `canonical` encoding (spec §6).

    A data frame has one spelling: the payload is kept whole. A control frame
    (``S ACTION (S PARAM)* [S]``) may also end with one more separator; a server UNSUBSCRIBE
    with an empty reason may also write that reason out as an empty field, which then needs
    the trailing separator (the encoder leaves an empty reason out, the parser reads a
    missing one as ``""``).
    """
    if not canonical.startswith(SEP):
        return {canonical}
    forms = {canonical, canonical + SEP}
    if isinstance(frame, ServerUnsubscribe) and frame.reason == "":
        forms.add(canonical + SEP + SEP)
    return forms


def _topics(frame: Frame) -> list[str]:
    if isinstance(frame, DataFrame | Subscribe | Unsubscribe | ServerUnsubscribe):
        return [frame.topic]
    if isinstance(frame, Ok | Err) and frame.action in ("SUBSCRIBE", "UNSUBSCRIBE") and frame.params:
        return [frame.params[0]]
    return []


# Frames at the size limits: data frames whose topic is about 100 bytes, control frames of
# about 512 bytes (ending in ASCII, a separator, 2-byte characters or a lone surrogate).
near_limits = st.one_of(
    st.builds(
        lambda n, tail, payload: "/" + "a" * n + tail + SEP + payload,
        st.integers(90, 105),
        st.text(topic_chars, max_size=3),
        st.text(any_char, max_size=5),
    ),
    st.builds(
        lambda head, n, tail: head + "a" * n + tail,
        st.sampled_from(
            [f"{SEP}SUBSCRIBE{SEP}/", f"{SEP}UNSUBSCRIBE{SEP}/r{SEP}4000{SEP}", f"{SEP}OK{SEP}x{SEP}"]
        ),
        st.integers(480, 505),
        st.sampled_from(["", SEP, "é", "é" * 5, "\ud800", "é" + SEP]),
    ),
)


@BOUNDED
@given(st.one_of(frames, control_frames, st.text(any_char), near_limits))
def test_any_text_raises_only_protocol_error(text: str) -> None:
    for parse in (parse_client_frame, parse_server_frame):
        try:
            frame = parse(text, None)
        except ProtocolError as exc:
            assert exc.reason in {
                Reason.NOT_SUBSCRIBED,
                Reason.NO_CONTROL_CHARACTER,
                Reason.CONTROL_TOO_LONG,
                Reason.INVALID_CONTROL,
            }
            continue
        # What was parsed is what was sent: encoding it gives the input back, up to the
        # spellings the grammar allows, and the canonical encoding parses to the same frame.
        canonical = _encode(frame, binary=False)
        assert isinstance(canonical, str)
        assert text in _spellings(frame, canonical), (frame, canonical)
        assert parse(canonical, None) == frame
        for topic in _topics(frame):
            assert SEP not in topic, frame
        if isinstance(frame, DataFrame):
            # A data frame's topic could have been subscribed: 1 to 100 bytes. (A SUBSCRIBE's
            # topic is returned as sent, whatever its size: the server answers a long one with
            # ERR Invalid Topic, spec §6, which needs it parsed.)
            assert frame.text is not None and 0 < _utf8_bytes(frame.topic) <= MAX_TOPIC_BYTES, frame
        elif parse is parse_client_frame:
            # The 512-byte limit is on what a client sends (a server's ERR echoes its params).
            assert _utf8_bytes(text) <= MAX_CONTROL_BYTES, frame


@BOUNDED
@given(st.one_of(binary_frames, st.binary(max_size=300)))
def test_any_bytes_raise_only_protocol_error(data: bytes) -> None:
    for parse in (parse_client_frame, parse_server_frame):
        try:
            frame = parse(None, data)
        except ProtocolError as exc:
            assert exc.reason in {
                Reason.NOT_SUBSCRIBED,
                Reason.NO_CONTROL_CHARACTER,
                Reason.INVALID_CONTROL,
                Reason.INVALID_UTF8,
            }
        else:
            assert isinstance(frame, DataFrame)
            assert encode_binary(frame.topic, frame.data or b"") == data


# Topics that pass every other rule, around the 100-byte limit (91 to 117 bytes).
long_topics = st.builds(
    lambda n, tail: "/" + "a" * n + tail,
    st.integers(90, 105),
    st.text(st.one_of(st.sampled_from("az/?=%"), topic_chars), max_size=3),
)


@BOUNDED
@given(st.one_of(st.text(any_char, max_size=150), long_topics))
def test_check_and_split_topic_raise_only_invalid_topic(topic: str) -> None:
    try:
        path, raw_path, query = split_topic(topic)
    except InvalidTopic:
        return
    assert len(topic.encode()) <= MAX_TOPIC_BYTES, topic
    assert SEP not in path
    assert raw_path.isascii() and query.isascii()


@BOUNDED
@given(topics, st.text(any_char, max_size=200))
def test_text_data_round_trip(topic: str, payload: str) -> None:
    frame = encode_text(topic, payload)
    assert parse_client_frame(frame, None) == DataFrame(topic, payload, None)
    assert parse_server_frame(frame, None) == DataFrame(topic, payload, None)


@BOUNDED
@given(topics, st.binary(max_size=200))
def test_binary_data_round_trip(topic: str, payload: bytes) -> None:
    frame = encode_binary(topic, payload)
    assert parse_client_frame(None, frame) == DataFrame(topic, None, payload)
    assert parse_server_frame(None, frame) == DataFrame(topic, None, payload)


@BOUNDED
@given(topics)
def test_subscribe_round_trip(topic: str) -> None:
    assert parse_client_frame(encode_subscribe(topic), None) == Subscribe(topic)


@BOUNDED
@given(topics, st.none() | client_codes, reasons)
def test_unsubscribe_round_trip(topic: str, code: int | None, reason: str) -> None:
    frame = Unsubscribe(topic, code, None if code is None else reason)
    encoded = encode_unsubscribe(frame.topic, frame.code, frame.reason)
    if frame.reason is not None and _utf8_bytes(frame.reason) > MAX_REASON_BYTES:
        # Longer than a close frame's reason: refused, as WebSocket.close() refuses it.
        with pytest.raises(ProtocolError) as info:
            parse_client_frame(encoded, None)
        assert info.value.reason == Reason.INVALID_CONTROL
    else:
        assert parse_client_frame(encoded, None) == frame


@BOUNDED
@given(
    st.one_of(
        st.builds(Ok, st.sampled_from(["SUBSCRIBE", "PING"]) | fields, st.lists(fields).map(tuple)),
        st.builds(
            Ok,
            st.just("UNSUBSCRIBE"),
            st.tuples(topics) | st.tuples(topics, st.integers(1000, 4999).map(str), reasons),
        ),
        st.builds(
            Err,
            err_reasons | fields,
            st.sampled_from(["SUBSCRIBE"]) | fields.filter(lambda s: s != "UNSUBSCRIBE"),
            st.lists(fields, max_size=4).map(tuple),
        ),
        st.builds(
            Err,
            st.just(Reason.NOT_SUBSCRIBED),
            st.just("UNSUBSCRIBE"),
            st.tuples(topics) | st.tuples(topics, st.integers(1000, 4999).map(str), reasons),
        ),
        st.builds(Invalid, fields),
        st.builds(ServerUnsubscribe, topics, st.integers(1000, 4999), reasons),
    )
)
def test_server_reply_round_trip(reply: Ok | Err | Invalid | ServerUnsubscribe) -> None:
    encoded = _encode(reply, binary=False)
    assert isinstance(encoded, str)
    assert parse_server_frame(encoded, None) == reply


@BOUNDED
@given(topics, client_codes, st.text(st.one_of(st.just(SEP), any_char), min_size=80, max_size=250))
def test_client_control_size_limit_counts_utf8_bytes(topic: str, code: int, reason: str) -> None:
    encoded = encode_unsubscribe(topic, code, reason)
    if len(encoded.encode("utf-8", "surrogatepass")) > MAX_CONTROL_BYTES:
        with pytest.raises(ProtocolError) as info:
            parse_client_frame(encoded, None)
        assert info.value.reason == Reason.CONTROL_TOO_LONG
    elif _utf8_bytes(reason) > MAX_REASON_BYTES:
        with pytest.raises(ProtocolError) as info:
            parse_client_frame(encoded, None)
        assert info.value.reason == Reason.INVALID_CONTROL
    else:
        assert parse_client_frame(encoded, None) == Unsubscribe(topic, code, reason)
