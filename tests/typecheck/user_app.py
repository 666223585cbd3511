"""User code written against the public API; tests/test_typing.py runs ``mypy --strict`` on it:
the decorators keep each handler's signature and values from the API have precise types."""

from typing import Annotated, assert_type, reveal_type

from fastapi import FastAPI, Query
from pydantic import BaseModel

from wsroute import (
    AppBroker,
    Broker,
    Channel,
    Data,
    Guard,
    HandshakeRequest,
    Reject,
    WebSocketStatus,
    WsRouter,
)


class Chat(BaseModel):
    text: str


class User(Guard):
    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    async def from_request(cls, request: HandshakeRequest) -> "User":
        token = request.query_params.get("token")
        if token is None:
            raise Reject(401, "missing token")
        return cls(token)


ws = WsRouter()


@ws.message("/rooms/{room}")
async def say(data: Chat, room: str, user: User, channel: Channel[Chat]) -> None:
    await channel.send(Chat(text=f"{user.name}@{room}: {data.text}"))
    await channel.broadcast(data)


@ws.message("/raw")
async def raw(data: Data, channel: Channel, limit: Annotated[int, Query()] = 3) -> None:
    text: str = data.text()
    await channel.send(text[:limit])


@ws.leave("/rooms/{room}")
async def left(room: str, status: WebSocketStatus, broker: Broker) -> None:
    code: int = status.code
    await broker.broadcast_to(f"/rooms/{room}", f"left with {code}")


reveal_type(say)  # the test reads the revealed signature: the decorator kept it
reveal_type(left)
assert_type(ws.broker, Broker)
assert_type(Data(text="x").bytes(), bytes)
assert_type(WebSocketStatus(1000).reason, str)

app = FastAPI()
ws.install(app)


@app.post("/announce")
async def announce(text: str, broker: AppBroker) -> None:
    await broker.broadcast_to("/rooms/lobby", text)


async def test_with_the_kit() -> None:
    """A user's test: what the testing kit returns is typed, nothing is `Any`."""
    from fastapi.testclient import TestClient
    from websockets.asyncio.client import ClientConnection

    from wsroute.history import StreamPosition
    from wsroute.multiplex.codec import Err, Ok, ServerFrame
    from wsroute.testing import MultiplexClient, connect, eventually, multiplex_testclient, serve

    async def ready() -> bool:
        return True

    assert_type(await eventually(lambda: 3), int)
    assert_type(await eventually(ready), bool)
    async with serve(app) as url, connect(f"ws://{url}/rooms/a") as client:
        assert_type(client.websocket, ClientConnection)
        assert_type(await client.recv(), str | bytes)
    async with serve(app) as url, MultiplexClient.connect(f"ws://{url}/rooms/a") as mux:
        assert_type(mux.websocket, ClientConnection)
        assert_type(await mux.subscribe("/rooms/b"), Ok | Err)
        assert_type(await mux.recv_data("/rooms/b"), str | bytes)
        assert_type(await mux.recv_any_data(), tuple[str, str | bytes])
        assert_type(await mux.recv(), ServerFrame)
        assert_type(mux.position("/rooms/b"), StreamPosition | None)
    with TestClient(app) as http, multiplex_testclient(http, "/rooms/a", presence=True) as session:
        assert_type(session.recv_data("/rooms/a"), str | bytes)
        assert_type(session.recv_presence("/rooms/a")[0], str)
