"""An ended connection is freed by reference counting, not left to the cycle collector.

A connection's objects (its session, channel, guards, and the server's objects it holds)
used to stay in reference cycles after the end: they lived until Python's cycle collector
next walked the whole heap, which during a reconnect storm was most of the server's CPU.
Here the collector is off: what is not freed by reference counting stays, and shows.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Annotated, ClassVar

import pytest
from fastapi import Depends, FastAPI

from wsroute import Channel, ChannelClosed, HandshakeRequest, WsRouter
from wsroute.testing import MultiplexClient, connect, eventually, serve


class Member:
    """A guard that can be watched: every instance is listed by a weak reference."""

    made: ClassVar[list[weakref.ref[Member]]] = []
    sync_to_thread = False

    def __init__(self, name: str) -> None:
        self.name = name
        Member.made.append(weakref.ref(self))

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> Member:
        return cls(request.query_params.get("name", "anon"))


@pytest.fixture
def no_cycle_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Room:
    """What a connection-scoped dependency often is: an object that holds the channel."""

    made: ClassVar[list[weakref.ref[Room]]] = []

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        Room.made.append(weakref.ref(self))


def room_of(channel: Channel) -> Room:
    return Room(channel)


def make_app(kept: list[Channel]) -> FastAPI:
    ws = WsRouter()

    @ws.message("/rooms/{room}")
    async def said(
        data: str, channel: Channel, member: Member, room: Annotated[Room, Depends(room_of)]
    ) -> None:
        assert room.channel is channel
        if data == "keep":
            kept.append(channel)  # the app holds the channel past the connection's end
        await channel.send(f"{member.name}: {data}")

    @ws.leave("/rooms/{room}")
    async def left(member: Member) -> None:
        pass

    app = FastAPI()
    ws.install(app)
    return app


def alive(made: list[weakref.ref[Member]] | list[weakref.ref[Room]] = Member.made) -> int:
    return sum(ref() is not None for ref in made)


async def test_ended_connections_are_freed_without_the_cycle_collector(no_cycle_collector: None) -> None:
    Member.made.clear()
    Room.made.clear()
    kept: list[Channel] = []
    async with serve(make_app(kept)) as url:
        for i in range(5):
            async with connect(f"{url}/rooms/a?name=d{i}") as client:
                await client.send("hi")
                assert await client.recv() == f"d{i}: hi"
        async with MultiplexClient.connect(f"{url}/rooms/a?name=m") as mux:
            for room in ("b", "c"):
                await mux.subscribe(f"/rooms/{room}")
            await mux.unsubscribe("/rooms/b")  # a topic ended while its socket stays open
            await eventually(lambda: alive() == 2, what="the unsubscribed topic's guard freed")
        await eventually(lambda: alive() == 0, what="every connection's guard freed")
        assert len(Member.made) == 8  # 5 dedicated + the multiplexed socket's 3 topics
        # The dependency cache is released too: a cached Room holding its channel would
        # otherwise keep each ended session in a cycle.
        assert len(Room.made) == 8  # resolved with the guards, at join
        await eventually(lambda: alive(Room.made) == 0, what="every cached dependency freed")


async def test_a_channel_kept_after_the_end_still_answers(no_cycle_collector: None) -> None:
    kept: list[Channel] = []
    async with serve(make_app(kept)) as url:
        async with connect(f"{url}/rooms/a?name=ann") as client:
            await client.send("keep")
            assert await client.recv() == "ann: keep"
        (channel,) = kept
        await eventually(lambda: channel.closed, what="the kept channel to report closed")
        assert channel.topic == "/rooms/a"
        with pytest.raises(ChannelClosed):
            await channel.send("too late")
        await channel.close()  # closing what has ended does nothing
