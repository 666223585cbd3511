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
