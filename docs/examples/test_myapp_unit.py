"""Unit tests of myapp.py in process, over Starlette's TestClient (see the testing guide)."""

import pytest
from fastapi.testclient import TestClient
from myapp import app
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from wsroute.multiplex.codec import Err, Ok
from wsroute.testing import multiplex_testclient


def test_double() -> None:
    with TestClient(app) as client, client.websocket_connect("/double") as websocket:
        websocket.send_text('{"x": 1, "y": 2}')
        assert websocket.receive_json() == {"x": 2, "y": 4}
        websocket.send_text("not json")
        with pytest.raises(WebSocketDisconnect) as closed:
            websocket.receive_text()
        assert closed.value.code == 1007


def test_a_guard_refuses() -> None:
    with TestClient(app) as client:
        with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect("/rooms/a"):
            pass
        assert refused.value.status_code == 401


def test_two_rooms_on_one_socket_in_process() -> None:
    with TestClient(app) as client, multiplex_testclient(client, "/rooms/a?user=ann") as mux:
        assert mux.subscribe("/rooms/b?user=ann") == Ok("SUBSCRIBE", ("/rooms/b?user=ann",))
        assert mux.subscribe("/rooms/c") == Err("401 Unauthorized", "SUBSCRIBE", ("/rooms/c",))
        mux.send("/rooms/a?user=ann", "hello a")
        mux.send("/rooms/b?user=ann", "hello b")
        assert mux.recv_data("/rooms/b?user=ann") == "ann: hello b"  # a's frame stays queued
        assert mux.recv_data("/rooms/a?user=ann") == "ann: hello a"
