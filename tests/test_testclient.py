"""Starlette's/FastAPI's TestClient works with wsroute handlers (in-process, no server)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from wsroute import AppBroker, Channel, Guard, HandshakeRequest, Reject, WebSocketStatus, WsRouter


def make_app(leaves: list[int]) -> FastAPI:
    ws = WsRouter()

    class Token(Guard):
        @classmethod
        def from_request(cls, request: HandshakeRequest) -> Token:
            if request.query_params.get("token") != "ok":
                raise Reject(401, "bad token")
            return cls()

    @ws.message("/rooms/{room}")
    async def said(data: str, token: Token, channel: Channel) -> None:
        await channel.broadcast(data)

    @ws.leave("/rooms/{room}")
    async def left(status: WebSocketStatus) -> None:
        leaves.append(status.code)

    app = FastAPI()

    @app.post("/rooms/{room}")
    async def post(room: str, text: str, broker: AppBroker) -> None:
        await broker.broadcast_to(f"/rooms/{room}", text)

    ws.install(app)
    return app


def test_testclient_round_trips_and_exits_cleanly_every_time() -> None:
    leaves: list[int] = []
    app = make_app(leaves)
    for _ in range(20):  # the exit used to race the client's cancel scope
        with TestClient(app) as client, client.websocket_connect("/rooms/a?token=ok") as ws:
            client.post("/rooms/a", params={"text": "from http"})
            assert ws.receive_text() == "from http"
            ws.send_text("chat")
            assert ws.receive_text() == "chat"
    assert leaves.count(1000) == 20


def test_testclient_sees_the_denial_status() -> None:
    app = make_app([])
    with TestClient(app) as client:
        with pytest.raises(WebSocketDenialResponse) as info, client.websocket_connect("/rooms/a"):
            pass
        assert info.value.status_code == 401
        assert info.value.json() == {"detail": "bad token"}
