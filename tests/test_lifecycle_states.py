"""The state machines of wsroute/lifecycle.py, as real connections walk them.

Every state change of a socket or a session goes through one method that checks the move;
these tests record the moves of real connections (in-process, over Starlette's TestClient)
and show that an impossible move raises where it happens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from wsroute import Channel, Guard, HandshakeRequest, Reject, WebSocketStatus, WsRouter
from wsroute import connection as connection_module
from wsroute import session as session_module
from wsroute.lifecycle import (
    ConnectionState,
    IllegalTransition,
    SessionState,
    check_connection_move,
    check_session_move,
)

S = SessionState
C = ConnectionState


class Member(Guard):
    @classmethod
    def from_request(cls, request: HandshakeRequest) -> Member:
        if request.query_params.get("name") == "mallory":
            raise Reject(403, "banned")
        return cls()


@pytest.fixture
def moves(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[tuple[int, int]]]]:
    """Every move checked while the test runs, by kind (the check itself still applies)."""
    seen: dict[str, list[tuple[int, int]]] = {"session": [], "connection": []}

    def session_move(old: SessionState, new: SessionState) -> None:
        seen["session"].append((old, new))
        check_session_move(old, new)

    def connection_move(old: ConnectionState, new: ConnectionState) -> None:
        seen["connection"].append((old, new))
        check_connection_move(old, new)

    monkeypatch.setattr(session_module, "check_session_move", session_move)
    monkeypatch.setattr(connection_module, "check_connection_move", connection_move)
    yield seen


def build(torn_down: list[str]) -> FastAPI:
    ws = WsRouter()

    async def db() -> AsyncIterator[object]:
        yield "db"
        torn_down.append("db")

    @ws.join("/rooms/{room}")
    async def joined(
        conn: Annotated[object, Depends(db, scope="request")], member: Member, channel: Channel
    ) -> None:
        await channel.send("welcome")

    @ws.message("/rooms/{room}")
    async def said(data: str, channel: Channel) -> None:
        if data == "close":
            await channel.close(4000, "bye")
        else:
            await channel.send(data)

    @ws.leave("/rooms/{room}")
    async def left(status: WebSocketStatus) -> None:
        pass

    app = FastAPI()
    ws.install(app)
    return app


def test_a_dedicated_connection_walks_join_open_leave(moves: dict[str, list[tuple[int, int]]]) -> None:
    torn_down: list[str] = []
    with TestClient(build(torn_down)) as client, client.websocket_connect("/rooms/a?name=ann") as ws:
        assert ws.receive_text() == "welcome"
        ws.send_text("hi")
        assert ws.receive_text() == "hi"
    assert moves["session"] == [
        (S.HANDSHAKE, S.ACCEPTED),
        (S.ACCEPTED, S.OPEN),
        (S.OPEN, S.JOINING),
        (S.JOINING, S.OPEN),
        (S.OPEN, S.LEAVING),
        (S.LEAVING, S.LEFT),
    ]
    assert moves["connection"] == [(C.CONNECTING, C.HANDSHAKE), (C.HANDSHAKE, C.OPEN), (C.OPEN, C.ENDED)]
    assert torn_down == ["db"]


def test_a_server_close_goes_through_closing(moves: dict[str, list[tuple[int, int]]]) -> None:
    with TestClient(build([])) as client, client.websocket_connect("/rooms/a?name=ann") as ws:
        assert ws.receive_text() == "welcome"
        ws.send_text("close")
        assert ws.receive()["code"] == 4000
    assert (S.OPEN, S.CLOSING) in moves["session"]
    assert (S.CLOSING, S.LEAVING) in moves["session"]
    assert moves["connection"][-2:] == [(C.OPEN, C.CLOSING), (C.CLOSING, C.ENDED)]


def test_a_refused_session_tears_down_what_its_guards_set_up(moves: dict[str, list[tuple[int, int]]]) -> None:
    torn_down: list[str] = []
    with (
        TestClient(build(torn_down)) as client,
        pytest.raises(WebSocketDenialResponse),
        client.websocket_connect("/rooms/a?name=mallory"),
    ):
        pass
    # The dependency ran before the guard refused (parameters resolve in order): its
    # teardown still runs, and the session never reaches a state that could leave.
    assert moves["session"] == [(S.HANDSHAKE, S.REFUSED)]
    assert moves["connection"] == [(C.CONNECTING, C.HANDSHAKE), (C.HANDSHAKE, C.DENIED)]
    assert torn_down == ["db"]


@pytest.mark.parametrize(
    ("old", "new"),
    [(S.LEFT, S.OPEN), (S.LEAVING, S.CLOSING), (S.REFUSED, S.ACCEPTED), (S.HANDSHAKE, S.OPEN)],
)
def test_an_impossible_session_move_raises(old: SessionState, new: SessionState) -> None:
    with pytest.raises(IllegalTransition, match=f"{old.name} -> {new.name}"):
        check_session_move(old, new)


@pytest.mark.parametrize(
    ("old", "new"), [(C.ENDED, C.OPEN), (C.DENIED, C.OPEN), (C.EVICTED, C.CLOSING), (C.CONNECTING, C.OPEN)]
)
def test_an_impossible_connection_move_raises(old: ConnectionState, new: ConnectionState) -> None:
    with pytest.raises(IllegalTransition, match=f"{old.name} -> {new.name}"):
        check_connection_move(old, new)
