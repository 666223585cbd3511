"""Integration tests of myapp.py: a real uvicorn, real sockets (see the testing guide)."""

import pytest
from fastapi import FastAPI
from myapp import LEAVES, app
from websockets.exceptions import InvalidStatus

from wsroute.multiplex.codec import Err, Ok
from wsroute.testing import WS_IMPLEMENTATIONS, MultiplexClient, connect, eventually, serve


# --8<-- [start:real]
async def test_room_broadcast_reaches_everyone_in_the_room() -> None:
    async with (
        serve(app) as url,  # uvicorn on 127.0.0.1, a free port, in a thread
        connect(f"ws://{url}/rooms/a?user=ann") as ann,
        connect(f"ws://{url}/rooms/a?user=bob") as bob,
        connect("/rooms/b?user=eve") as eve,  # a path: on the server `serve` runs
    ):
        await ann.send("hi")
        assert await ann.recv() == "ann: hi"
        assert await bob.recv() == "ann: hi"
        with pytest.raises(TimeoutError):
            await eve.recv(timeout=0.2)  # another room


async def test_a_guard_refuses_with_the_real_status() -> None:
    async with serve(app) as url:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://{url}/rooms/a"):
                pass
        assert refused.value.response.status_code == 401
        assert refused.value.response.body == b'{"detail":"who are you?"}'


async def test_leave_sees_the_close_code_and_a_drop_is_1006() -> None:
    LEAVES.clear()
    async with serve(app) as url:
        async with connect(f"ws://{url}/rooms/a?user=ann") as ann:
            await ann.close(4000, "bye")
        await eventually(lambda: len(LEAVES) == 1, what="ann's leave")
        async with connect(f"ws://{url}/rooms/a?user=bob") as bob:
            bob.websocket.transport.abort()  # pull the cable
            await eventually(lambda: len(LEAVES) == 2, what="bob's leave")
        async with connect(f"ws://{url}/rooms/a?user=cy"):
            pass  # closes with 1000 here; its leave may still be running on the server
    # Leaving `serve` has shut uvicorn down: every leave has run, no need to wait.
    assert [(status.code, status.reason) for status in LEAVES] == [
        (4000, "bye"),
        (1006, ""),
        (1000, ""),
    ]


@pytest.mark.parametrize("ws", WS_IMPLEMENTATIONS)  # uvicorn's two, and the fastlane
async def test_invalid_message_closes_1007(ws: str) -> None:
    async with serve(app, ws=ws) as url, connect(f"ws://{url}/double") as client:
        await client.send('{"x": 1}')
        await client.expect_close(1007, "invalid message: y: Field required")


# --8<-- [end:real]


# --8<-- [start:fixtures]
@pytest.fixture
def wsroute_app() -> FastAPI:
    """The app the plugin's `wsroute_url` fixture serves."""
    return app


async def test_with_the_plugins_fixture(wsroute_url: str) -> None:
    async with connect(f"ws://{wsroute_url}/double") as client:
        await client.send('{"x": 1, "y": 2}')
        assert await client.recv() == '{"x":2,"y":4}'


# --8<-- [end:fixtures]


# --8<-- [start:multiplex]
async def test_two_rooms_on_one_socket() -> None:
    async with serve(app) as url, MultiplexClient.connect(f"ws://{url}/rooms/a?user=ann") as mux:
        assert await mux.subscribe("/rooms/b?user=ann") == Ok("SUBSCRIBE", ("/rooms/b?user=ann",))
        assert await mux.subscribe("/rooms/c") == Err("401 Unauthorized", "SUBSCRIBE", ("/rooms/c",))
        await mux.send("/rooms/b?user=ann", "hello b")
        assert await mux.recv_data("/rooms/b?user=ann") == "ann: hello b"


# --8<-- [end:multiplex]
