"""Request/reply over rocket-multiplex (the ``meta`` extension), against a real uvicorn server.

A message handler's return value answers a request, to that client only; an exception becomes
an error reply and the topic stays open. A client that does not ask for ``meta`` (a plain
rocket-multiplex client, a plain WebSocket) sees exactly the frames it saw before.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.exceptions import WebSocketException

from wsroute import Channel, RateLimited, WsRouter
from wsroute.multiplex.codec import SEP, DataFrame, Invalid, Ok, ServerUnsubscribe
from wsroute.testing import (
    WS_IMPLEMENTATIONS,
    MultiplexClient,
    RequestError,
    connect,
    multiplex_testclient,
    serve,
)


class Add(BaseModel):
    a: int
    b: int


class Sum(BaseModel):
    total: int


def make_app(joined: asyncio.Event | None = None) -> FastAPI:
    ws = WsRouter()

    @ws.message("/calc")
    async def add(data: Add) -> Sum:
        return Sum(total=data.a + data.b)

    @ws.message("/rooms/{room}")
    async def say(data: str, channel: Channel, room: str) -> str:
        await channel.broadcast(f"{room}: {data}")
        return f"stored {data}"

    @ws.message("/ack")
    async def ack(data: str) -> None:
        return None

    @ws.message("/fail")
    async def fail(data: str) -> str:
        if data == "bug":
            raise RuntimeError("a bug")
        if data == "missing":
            raise WebSocketException(4004, "no such item")
        return "fine"

    @ws.message("/bye")
    async def bye(data: str, channel: Channel) -> str:
        await channel.close(4000, "bye")
        return "never sent"

    @ws.message("/slowjoin")
    async def after_join(data: str) -> str:
        return f"after join: {data}"

    @ws.join("/slowjoin")
    async def slow_join(channel: Channel) -> None:
        await asyncio.sleep(0.2)
        await channel.send("joined")

    @ws.message("/query")
    async def query(data: str, q: str | None = None) -> str:
        return f"q={q}"

    @ws.message("/limited", rate_limit=(2, 60.0))
    async def limited(data: str) -> str:
        return f"ok {data}"

    @ws.exception_handler(RateLimited)
    async def over(channel: Channel, exc: RateLimited) -> None:
        await channel.send(f"handler: {exc.reason}")

    @ws.message("/long")
    async def long_reason(data: str) -> str:
        raise WebSocketException(4000, "é" * 300)

    @ws.message("/reserved")
    async def reserved_code(data: str) -> str:
        raise WebSocketException(1005, "no status")

    app = FastAPI()
    ws.install(app)
    return app


@pytest.mark.parametrize("ws_impl", WS_IMPLEMENTATIONS)
async def test_a_request_gets_the_handlers_return_value(ws_impl: str) -> None:
    async with (
        serve(make_app(), ws=ws_impl) as url,
        MultiplexClient.connect(f"ws://{url}/calc", meta=True) as mux,
    ):
        assert await mux.request("/calc", '{"a": 2, "b": 3}') == '{"total":5}'
        ok = await mux.subscribe("/ack", meta=True)
        assert ok == Ok("SUBSCRIBE", ("/ack", "meta"))
        assert await mux.request("/ack", "x") == ""  # None acknowledges


async def test_the_reply_goes_to_the_requester_only_and_broadcasts_keep_flowing() -> None:
    async with (
        serve(make_app()) as url,
        MultiplexClient.connect(f"ws://{url}/rooms/a", meta=True) as alice,
        MultiplexClient.connect(f"ws://{url}/rooms/a") as bob,
    ):
        assert await alice.request("/rooms/a", "hi") == "stored hi"
        # Alice's copy of the broadcast is plain data on her meta subscription.
        assert await alice.recv_data("/rooms/a") == "a: hi"
        # Bob speaks plain rocket-multiplex: the broadcast only, as before; no reply frame.
        assert await bob.recv() == DataFrame("/rooms/a", "a: hi", None)
        await bob.send("/rooms/a", "yo")
        assert await bob.recv() == DataFrame("/rooms/a", "a: yo", None)
        assert await alice.recv_data("/rooms/a") == "a: yo"


async def test_100_pipelined_requests_are_answered_in_order_by_id() -> None:
    async with serve(make_app()) as url, MultiplexClient.connect(f"ws://{url}/calc", meta=True) as mux:
        for n in range(100):
            await mux.send_raw(f'/calc{SEP}id=r{n}{SEP}{{"a": {n}, "b": 1000}}')
        replies = [await mux.recv() for _ in range(100)]
    assert replies == [DataFrame("/calc", f'reply=r{n}{SEP}{{"total":{n + 1000}}}', None) for n in range(100)]


async def test_an_error_becomes_an_error_reply_and_the_topic_stays_open() -> None:
    async with serve(make_app()) as url, MultiplexClient.connect(f"ws://{url}/fail", meta=True) as mux:
        with pytest.raises(RequestError) as bug:
            await mux.request("/fail", "bug")
        assert (bug.value.code, bug.value.reason) == (1011, "Internal Error")
        with pytest.raises(RequestError) as missing:
            await mux.request("/fail", "missing")
        assert (missing.value.code, missing.value.reason) == (4004, "no such item")
        assert await mux.request("/fail", "ok") == "fine"
        await mux.subscribe("/calc", meta=True)
        with pytest.raises(RequestError) as invalid:
            await mux.request("/calc", '{"a": "not a number"}')
        assert invalid.value.code == 1007
        assert await mux.request("/calc", '{"a": 1, "b": 1}') == '{"total":2}'
        # A plain message that fails still closes its topic, as without the extension.
        await mux.send("/fail", "bug")
        assert await mux.recv() == ServerUnsubscribe("/fail", 1011, "Internal Error")


async def test_a_handler_that_closes_its_topic_sends_no_reply() -> None:
    async with serve(make_app()) as url, MultiplexClient.connect(f"ws://{url}/calc", meta=True) as mux:
        await mux.subscribe("/bye", meta=True)
        await mux.send_raw(f"/bye{SEP}id=1{SEP}x")
        assert await mux.recv() == ServerUnsubscribe("/bye", 4000, "bye")
        # The socket and the other topic carry on; the next frame is this reply, not /bye's.
        assert await mux.request("/calc", '{"a": 1, "b": 2}') == '{"total":3}'


async def test_a_request_sent_while_join_runs_is_answered_after_it() -> None:
    async with serve(make_app()) as url, MultiplexClient.connect(f"ws://{url}/calc", meta=True) as mux:
        await mux.subscribe("/slowjoin", meta=True)
        assert await mux.request("/slowjoin", "early") == "after join: early"
        assert await mux.recv_data("/slowjoin") == "joined"


async def test_the_options_parameter_never_reaches_the_app() -> None:
    async with serve(make_app()) as url:
        async with MultiplexClient.connect(f"ws://{url}/query?q=1", meta=True) as mux:
            assert mux.first_topic == "/query?q=1"
            assert await mux.request("/query?q=1", "x") == "q=1"
        # A plain WebSocket is not multiplexed: its query is the app's, whatever it holds.
        async with connect(f"ws://{url}/query?rocket-multiplex=meta") as plain:
            await plain.send("x")
            await asyncio.sleep(0.1)
            with pytest.raises(TimeoutError):
                await plain.recv(timeout=0.2)  # the return value is ignored without meta


async def test_invalid_options_and_metadata_get_clear_errors() -> None:
    async with serve(make_app()) as url:
        async with httpx.AsyncClient() as http:
            # Not an upgrade; the options parameter is only read on a multiplexed handshake.
            response = await http.get(f"http://{url}/asyncapi.json")
            assert response.status_code == 200
        with pytest.raises(Exception) as refused:
            async with MultiplexClient.connect(f"ws://{url}/calc?rocket-multiplex=BAD!"):
                pass
        assert "400" in str(refused.value)
        with pytest.raises(Exception) as no_meta:
            async with MultiplexClient.connect(f"ws://{url}/calc?rocket-multiplex=other"):
                pass
        assert "400" in str(no_meta.value)
        async with MultiplexClient.connect(f"ws://{url}/calc", meta=True) as mux:
            await mux.send_raw(f"/calc{SEP}no metadata field")
            assert await mux.recv() == Invalid("Invalid Metadata")
            await mux.send_raw(f"/calc{SEP}{{not items}}{SEP}x")
            assert await mux.recv() == Invalid("Invalid Metadata")
            # Unknown options are not granted: the OK says what the server speaks.
            assert await mux.subscribe("/ack", meta=True) == Ok("SUBSCRIBE", ("/ack", "meta"))
            await mux.send_raw(f"{SEP}SUBSCRIBE{SEP}/fail{SEP}meta,future-thing=1")
            assert await mux.recv() == Ok("SUBSCRIBE", ("/fail", "meta"))
            # Options without meta are not options: the frame is refused, nothing subscribed.
            await mux.send_raw(f"{SEP}SUBSCRIBE{SEP}/ack2{SEP}future-thing")
            assert await mux.recv() == Invalid("Invalid Control Message")
            # Still one healthy socket.
            assert await mux.request("/calc", '{"a": 0, "b": 0}') == '{"total":0}'


async def test_a_plain_multiplex_client_sees_todays_frames() -> None:
    async with serve(make_app()) as url, MultiplexClient.connect(f"ws://{url}/rooms/a") as mux:
        assert await mux.subscribe("/calc") == Ok("SUBSCRIBE", ("/calc",))
        await mux.send("/calc", '{"a": 1, "b": 2}')  # the return value is ignored
        await mux.send("/rooms/a", "hello")
        assert await mux.recv() == DataFrame("/rooms/a", "a: hello", None)


def test_requests_over_the_in_process_client() -> None:
    with TestClient(make_app()) as client, multiplex_testclient(client, "/calc", meta=True) as mux:
        assert mux.request("/calc", '{"a": 40, "b": 2}') == '{"total":42}'
        mux.subscribe("/fail", meta=True)
        with pytest.raises(RequestError) as info:
            mux.request("/fail", "missing")
        assert info.value.code == 4004
        assert mux.request("/fail", "x") == "fine"


async def test_a_request_over_the_rate_limit_gets_an_error_reply_not_the_handler() -> None:
    """The topic's `RateLimited` handler answers plain messages through the channel; a request
    over the limit is answered as a failed request, so the caller is not left waiting."""
    async with serve(make_app()) as url, MultiplexClient.connect(f"ws://{url}/limited", meta=True) as mux:
        assert await mux.request("/limited", "1") == "ok 1"
        assert await mux.request("/limited", "2") == "ok 2"
        with pytest.raises(RequestError) as over:
            await mux.request("/limited", "3", timeout=2.0)
        assert (over.value.code, over.value.reason) == (1008, "rate limit exceeded")
        # Still subscribed; a plain message over the limit goes to the handler, as before.
        await mux.send("/limited", "4")
        assert await mux.recv_data("/limited") == "handler: rate limit exceeded"


async def test_an_id_without_a_value_is_invalid_metadata_not_an_unparsable_reply() -> None:
    async with serve(make_app()) as url, MultiplexClient.connect(f"ws://{url}/calc", meta=True) as mux:
        await mux.send_raw(f'/calc{SEP}id{SEP}{{"a": 1, "b": 2}}')
        assert await mux.recv() == Invalid("Invalid Metadata")  # before: `reply=·{"total":3}`
        assert await mux.request("/calc", '{"a": 1, "b": 2}') == '{"total":3}'


async def test_an_error_reply_carries_the_reason_a_close_would() -> None:
    """Clipped to a close frame's 123 bytes, as the same failure closes a plain message's
    topic; a code no close frame may carry (1005) is a bug: 1011, in the reply and the close."""
    async with serve(make_app()) as url, MultiplexClient.connect(f"ws://{url}/long", meta=True) as mux:
        with pytest.raises(RequestError) as long:
            await mux.request("/long", "x")
        await mux.send("/long", "x")
        closed = await mux.recv()
        assert isinstance(closed, ServerUnsubscribe) and closed.code == 4000
        assert long.value.code == 4000 and long.value.reason == closed.reason
        assert len(closed.reason.encode()) <= 123 and closed.reason.startswith("éé")

        await mux.subscribe("/reserved", meta=True)
        with pytest.raises(RequestError) as reserved:
            await mux.request("/reserved", "x")
        assert (reserved.value.code, reserved.value.reason) == (1011, "Internal Error")
        await mux.send("/reserved", "x")  # before: nothing at all, the topic stayed open
        assert await mux.recv() == ServerUnsubscribe("/reserved", 1011, "Internal Error")
