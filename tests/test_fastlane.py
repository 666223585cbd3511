"""The fastlane protocol: a broadcast's frame is encoded once and written straight to idle
subscribers; everything else (and any busy subscriber) takes the normal ASGI path."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from server import connect, eventually, serve
from wsroute import Channel, WsRouter
from wsroute.frames import EXTENSION, frame_bytes

FASTLANE = "wsroute.fastlane:FastlaneProtocol"


class CountSends:
    """ASGI wrapper counting the websocket.send events that go through the server's send."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sends = 0
        self.offered: list[bool] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        self.offered.append(EXTENSION in scope.get("extensions", {}))

        async def counting(event: Message) -> None:
            if event["type"] == "websocket.send":
                self.sends += 1
            await send(event)

        await self.app(scope, receive, counting)


def build() -> tuple[CountSends, WsRouter]:
    ws = WsRouter()

    @ws.message("/feed")
    async def feed(data: str, channel: Channel) -> None:
        await channel.broadcast(data)

    app = FastAPI()
    ws.install(app)
    return CountSends(app), ws


async def broadcast_to_ten(protocol: str) -> tuple[int, list[bool]]:
    wrapped, ws = build()
    with serve(wrapped, ws=protocol) as url:
        clients = [await connect(f"ws://{url}/feed", compression=None) for _ in range(10)]
        await eventually(lambda: ws.broker.local_topics().get("/feed") == 10, what="subscribed")
        for n in range(20):
            await clients[0].send(f"m{n}")
            for client in clients:
                assert await asyncio.wait_for(client.recv(), 5) == f"m{n}"
        for client in clients:
            await client.close()
    return wrapped.sends, wrapped.offered


async def test_fastlane_bypasses_per_subscriber_sends() -> None:
    sends, offered = await broadcast_to_ten(FASTLANE)
    assert all(offered)
    assert sends == 0  # 200 deliveries, none through ASGI send


async def test_stock_protocol_sends_once_per_subscriber() -> None:
    sends, offered = await broadcast_to_ten("websockets-sansio")
    assert not any(offered)
    assert sends == 200


def test_frame_is_encoded_once_and_shared() -> None:
    event: Message = {"type": "websocket.send", "text": "hé"}
    first = frame_bytes(event)
    assert first == b"\x81\x03h\xc3\xa9"
    assert frame_bytes(event) is first
    binary: Message = {"type": "websocket.send", "bytes": b"x" * 200}
    assert frame_bytes(binary)[:4] == b"\x82\x7e\x00\xc8"


async def test_fastlane_never_negotiates_compression() -> None:
    wrapped, _ = build()
    with serve(wrapped, ws=FASTLANE) as url:
        async with connect(f"ws://{url}/feed", compression="deflate") as client:
            assert client.protocol.extensions == []
            await client.send("x")
            assert await client.recv() == "x"
