"""Tests of myapp.py against a real uvicorn (see the testing guide)."""

import asyncio

import pytest
from fastapi.testclient import TestClient
from myapp import LEAVES, app
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server import connect, eventually, serve  # tests/server.py, copied into your tests
from wsroute.multiplex.codec import Err, Ok
from wsroute.testing import MultiplexClient


# --8<-- [start:real]
async def test_room_broadcast_reaches_everyone_in_the_room() -> None:
    with serve(app) as host:  # uvicorn on 127.0.0.1, a free port, in a thread
        async with (
            connect(f"ws://{host}/rooms/a?user=ann") as ann,
            connect(f"ws://{host}/rooms/a?user=bob") as bob,
            connect(f"ws://{host}/rooms/b?user=eve") as eve,
        ):
            await ann.send("hi")
            assert await ann.recv() == "ann: hi"
            assert await bob.recv() == "ann: hi"
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(eve.recv(), 0.2)  # another room


async def test_a_guard_refuses_with_the_real_status() -> None:
    with serve(app) as host:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://{host}/rooms/a"):
                pass
        assert refused.value.response.status_code == 401
        assert refused.value.response.body == b'{"detail":"who are you?"}'


async def test_leave_sees_the_close_code_and_a_drop_is_1006() -> None:
    LEAVES.clear()
    with serve(app) as host:
        async with connect(f"ws://{host}/rooms/a?user=ann") as ann:
            await ann.close(4000, "bye")
        await eventually(lambda: len(LEAVES) == 1, what="ann's leave")
        bob = await connect(f"ws://{host}/rooms/a?user=bob")
        bob.transport.abort()  # pull the cable
        await eventually(lambda: len(LEAVES) == 2, what="bob's leave")
    assert [(status.code, status.reason) for status in LEAVES] == [
        (4000, "bye"),
        (1006, ""),
    ]


async def test_invalid_message_closes_1007() -> None:
    with serve(app) as host:
        async with connect(f"ws://{host}/double") as client:
            await client.send('{"x": 1}')
            with pytest.raises(ConnectionClosed) as closed:
                await client.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1007
    assert closed.value.rcvd.reason == "invalid message: y: Field required"


# --8<-- [end:real]


# --8<-- [start:multiplex]
async def test_two_rooms_on_one_socket() -> None:
    with serve(app) as host:
        async with MultiplexClient.connect(f"ws://{host}/rooms/a?user=ann") as mux:
            assert await mux.subscribe("/rooms/b?user=ann") == Ok(
                "SUBSCRIBE", ("/rooms/b?user=ann",)
            )
            assert await mux.subscribe("/rooms/c") == Err(
                "401 Unauthorized", "SUBSCRIBE", ("/rooms/c",)
            )
            await mux.send("/rooms/b?user=ann", "hello b")
            assert await mux.recv_data("/rooms/b?user=ann") == "ann: hello b"


# --8<-- [end:multiplex]


# --8<-- [start:testclient]
def test_with_starlettes_test_client() -> None:
    with TestClient(app) as client, client.websocket_connect("/double") as websocket:
        websocket.send_text('{"x": 1, "y": 2}')
        assert websocket.receive_json() == {"x": 2, "y": 4}
        websocket.send_text("not json")
        with pytest.raises(WebSocketDisconnect) as closed:
            websocket.receive_text()
        assert closed.value.code == 1007


# --8<-- [end:testclient]
