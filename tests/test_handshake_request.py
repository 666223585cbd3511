"""`HandshakeRequest.query_params`: wsroute's own split of simple query strings gives exactly
what Starlette's parse gives, and the parse happens once per request."""

from __future__ import annotations

import random

import pytest
from starlette.datastructures import QueryParams

from wsroute import HandshakeRequest
from wsroute.guards import forget_parsed, parse_query

EDGES = [
    b"",
    b"token=abc",
    b"user=alice&token=v1.eyJzdWIiOiJhIn0.sig-_",
    b"a=1&a=2&b=3",  # repeated keys: getlist has both, get has the last (Starlette's rule)
    b"flag",  # no '=': a blank value
    b"flag=",
    b"=value",  # an empty name is kept
    b"a=b=c",  # only the first '=' separates
    b"&&a=1&&",  # empty fields are skipped
    b"&",
    b"=",
    b"a;b=1",  # ';' is not a separator
    b"name=a%20b&x=%E2%9C%93",  # percent-encoding: Starlette's parse
    b"q=a+b",  # '+' is a space: Starlette's parse
    b"bad=%zz&also=%",  # malformed escapes stay as they are
    "caf\u00e9=cr\u00e8me".encode("latin-1"),  # bytes above 0x7f read as latin-1
]


def items(params: QueryParams) -> list[tuple[str, str]]:
    return list(params.multi_items())


@pytest.mark.parametrize("raw", EDGES)
def test_a_query_string_parses_as_starlette_parses_it(raw: bytes) -> None:
    ours, theirs = parse_query(raw), QueryParams(raw)
    assert items(ours) == items(theirs)
    assert dict(ours) == dict(theirs)
    assert str(ours) == str(theirs)


def test_random_query_strings_parse_as_starlette_parses_them() -> None:
    rng = random.Random(20261207)
    alphabet = "ab=&%+;.-_~2F\u00e9 "
    for _ in range(2000):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24))).encode("latin-1")
        assert items(parse_query(raw)) == items(QueryParams(raw)), raw


def request(query: bytes) -> HandshakeRequest:
    return HandshakeRequest({"type": "websocket", "path": "/x", "query_string": query, "headers": []})


def test_a_guard_reads_the_query_parsed_once_and_again_after_it_was_forgotten() -> None:
    req = request(b"user=alice&room=1&room=2")
    params = req.query_params
    assert params.get("user") == "alice" and params.getlist("room") == ["1", "2"]
    assert req.query_params is params  # parsed once per request
    forget_parsed(req)  # the handshake is decided: an idle socket keeps no parsed views
    again = req.query_params
    assert again is not params and items(again) == items(params)


def test_no_query_string_gives_an_empty_query() -> None:
    params = request(b"").query_params
    assert params.get("token") is None and items(params) == [] and str(params) == ""
