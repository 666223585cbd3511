"""The app under test in the testing guide."""

from fastapi import FastAPI
from pydantic import BaseModel

from wsroute import Channel, Guard, HandshakeRequest, Reject, WebSocketStatus, WsRouter

ws = WsRouter()
LEAVES: list[WebSocketStatus] = []


class User(Guard):
    sync_to_thread = False  # reads the request only: runs on the event loop

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> "User":
        name = request.query_params.get("user")
        if not name:
            raise Reject(401, "who are you?")
        return cls(name)


class Point(BaseModel):
    x: int
    y: int


@ws.message("/rooms/{room}")
async def said(data: str, user: User, channel: Channel) -> None:
    await channel.broadcast(f"{user.name}: {data}")


@ws.message("/double")
async def double(data: Point, channel: Channel) -> None:
    await channel.send(Point(x=data.x * 2, y=data.y * 2))


@ws.leave("/rooms/{room}")
async def left(status: WebSocketStatus) -> None:
    LEAVES.append(status)


app = FastAPI()
ws.install(app)
