"""The fastlane protocol: a broadcast's frame is encoded once and written straight to idle
subscribers; everything else (and any busy subscriber) takes the normal ASGI path."""

from __future__ import annotations

import asyncio
import importlib
import sys
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from support.clients import connect
from wsroute import Channel, WsRouter
from wsroute.fastlane_extension import EXTENSION, frame_bytes
from wsroute.testing import FASTLANE, eventually, serve


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
    async with serve(wrapped, ws=protocol) as url:
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
    async with (
        serve(wrapped, ws=FASTLANE) as url,
        connect(f"ws://{url}/feed", compression="deflate") as client,
    ):
        assert client.protocol.extensions == []
        await client.send("x")
        assert await client.recv() == "x"


# --- coalescing: frames of one loop iteration leave in one write, in call order ---------------


class FakeTransport:
    """Records writes; the real one is uvloop's (exercised by the server tests above)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def test_frames_of_one_iteration_leave_in_one_write_and_other_writes_keep_order() -> None:
    from wsroute.fastlane import _MAX_HELD, _CoalescingTransport, _Flusher

    raw = FakeTransport()
    transport = _CoalescingTransport(raw, _Flusher(asyncio.get_running_loop()))  # type: ignore[arg-type]
    transport.hold(b"a")
    transport.hold(b"b")
    assert raw.writes == []  # held until the end of this iteration
    await asyncio.sleep(0)
    assert raw.writes == [b"ab"]
    # Another write (uvicorn's own send, a pong, a close frame) sends what is held first.
    transport.hold(b"c")
    transport.write(b"own")
    transport.hold(b"d")
    await asyncio.sleep(0)
    assert raw.writes == [b"ab", b"c", b"own", b"d"]
    # Past the high-water mark the held bytes go at once, so flow control sees them.
    transport.hold(b"x" * (_MAX_HELD - 1))
    transport.hold(b"y")
    assert raw.writes[-1] == b"x" * (_MAX_HELD - 1) + b"y"
    await asyncio.sleep(0)
    assert len(raw.writes) == 5
    # close writes what is held; abort drops it; anything else is the transport's own.
    transport.hold(b"last")
    transport.close()
    assert raw.writes[-1] == b"last" and raw.closed
    transport.hold(b"dropped")
    transport.abort()
    await asyncio.sleep(0)
    assert raw.writes[-1] == b"last" and raw.aborted
    assert transport.get_extra_info("peername") == "info:peername"


async def test_a_burst_of_broadcasts_then_a_close_arrives_whole_and_in_order() -> None:
    ws = WsRouter()

    @ws.message("/burst")
    async def burst(data: str, channel: Channel) -> None:
        # All in one loop iteration: 50 broadcasts, a reply to this client alone, a close.
        for n in range(25):
            await channel.broadcast(f"b{n}")
        await channel.send("own")
        for n in range(25, 50):
            await channel.broadcast(f"b{n}")
        await channel.close(4000, "done")

    app = FastAPI()
    ws.install(app)
    async with (
        serve(app, ws=FASTLANE) as url,
        connect(f"ws://{url}/burst") as sender,
        connect(f"ws://{url}/burst") as other,
    ):
        await eventually(lambda: ws.broker.local_topics().get("/burst") == 2, what="subscribed")
        await sender.send("go")
        got = [await asyncio.wait_for(sender.recv(), 5) for _ in range(51)]
        seen = [await asyncio.wait_for(other.recv(), 5) for _ in range(50)]
        await asyncio.wait_for(sender.wait_closed(), 5)
        assert sender.close_code == 4000 and sender.close_reason == "done"
    expected = [f"b{n}" for n in range(50)]
    assert got == [*expected[:25], "own", *expected[25:]]
    assert seen == expected


# --- the uvicorn it runs on: checked at import, so the server refuses to start ---------------


def import_fastlane_afresh(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Import wsroute.fastlane again, as a server start does (monkeypatch restores the old one)."""
    forget_fastlane(monkeypatch)
    return importlib.import_module("wsroute.fastlane")


def forget_fastlane(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next import of wsroute.fastlane run it again; the test's end restores it."""
    importlib.import_module("wsroute.fastlane")  # so there is a module to restore
    monkeypatch.delitem(sys.modules, "wsroute.fastlane")


def assert_refusal(error: BaseException, version: str, *, names: str) -> None:
    # A fresh import defines a fresh class, so it is recognised by name, not identity.
    assert type(error).__name__ == "UnsupportedUvicorn" and isinstance(error, RuntimeError)
    message = str(error)
    assert f"installed uvicorn {version}:" in message
    assert names in message
    assert "supports uvicorn 0.52.1 and newer" in message
    assert "pip install 'uvicorn>=0.52.1'" in message and "--ws websockets-sansio" in message


def test_an_older_uvicorn_is_refused_when_the_server_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    forget_fastlane(monkeypatch)
    monkeypatch.setattr(uvicorn, "__version__", "0.52.0")
    config = uvicorn.Config(FastAPI(), ws=FASTLANE)
    with pytest.raises(RuntimeError) as info:
        config.load()
    assert_refusal(info.value, "0.52.0", names="older than 0.52.1")


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ("no pause_writing", "pause_writing()"),
        ("handle_connect takes other parameters", "handle_connect(event)"),
        ("send is not a coroutine", "async send(message)"),
    ],
)
def test_a_newer_uvicorn_whose_internals_changed_is_refused(
    monkeypatch: pytest.MonkeyPatch, change: str, names: str
) -> None:
    monkeypatch.setattr(uvicorn, "__version__", "9.0.0")
    if change == "no pause_writing":
        monkeypatch.delattr(WebSocketsSansIOProtocol, "pause_writing")
    elif change == "handle_connect takes other parameters":
        monkeypatch.setattr(WebSocketsSansIOProtocol, "handle_connect", lambda self, request, path: None)
    else:
        monkeypatch.setattr(WebSocketsSansIOProtocol, "send", lambda self, message: None)
    with pytest.raises(RuntimeError) as info:
        import_fastlane_afresh(monkeypatch)
    assert_refusal(info.value, "9.0.0", names=names)


def test_a_newer_uvicorn_whose_internals_match_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from wsroute import fastlane

    monkeypatch.setattr(uvicorn, "__version__", "9.0.0")
    fastlane._check_uvicorn("9.0.0", WebSocketsSansIOProtocol)  # no error, no warning


class SansIOWithoutDisconnected(asyncio.Protocol):
    """uvicorn's protocol as it was before it tracked a lost connection: every method the
    fastlane overrides is there, but nothing sets ``disconnected``."""

    def __init__(self) -> None:
        self.config = self.conn = self.loop = self.transport = None
        self.handshake_complete = self.close_sent = False
        self.initial_response = None
        self.writable = asyncio.Event()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def handle_connect(self, event: Any) -> None:
        self.scope: dict[str, Any] = {}

    async def send(self, message: Any) -> None:
        pass

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


SansIOWithoutDisconnected.__module__ = "uvicorn.protocols.websockets.websockets_sansio_impl"


def test_missing_connection_state_or_protocol_is_named() -> None:
    from wsroute import fastlane

    with pytest.raises(fastlane.UnsupportedUvicorn) as info:
        fastlane._check_uvicorn("9.0.0", SansIOWithoutDisconnected)
    assert_refusal(info.value, "9.0.0", names="lacks disconnected")
    with pytest.raises(fastlane.UnsupportedUvicorn) as info:
        fastlane._check_uvicorn("0.30.0", None)
    assert_refusal(info.value, "0.30.0", names="has no websockets-sansio protocol")
