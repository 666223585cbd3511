"""Plain-`def` guards say where they run (`sync_to_thread`): on the event loop, in the
thread pool, or, unset, in the thread pool with a `SyncGuardWarning` (docs/guards.md)."""

from __future__ import annotations

import asyncio
import threading
import warnings
from typing import ClassVar

import pytest
from fastapi import FastAPI

from wsroute import Channel, Guard, HandshakeRequest, RegistrationError, SyncGuardWarning, WsRouter
from wsroute.testing import connect, serve

pytestmark = pytest.mark.anyio


class Seen:
    """Thread ids recorded by the guards and the handlers (the server runs in a thread)."""

    guard: ClassVar[list[int]] = []
    handler: ClassVar[list[int]] = []


class Inline(Guard):
    sync_to_thread = False

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> Inline:
        Seen.guard.append(threading.get_ident())
        return cls()


class Blocking(Guard):
    """Waits (bounded) for the test to let it go: I/O, as far as the event loop can tell."""

    sync_to_thread = True
    release: ClassVar[threading.Event] = threading.Event()

    @classmethod
    def from_request(cls, request: HandshakeRequest) -> Blocking:
        Seen.guard.append(threading.get_ident())
        cls.release.wait(5)
        return cls()


def make_app() -> FastAPI:
    ws = WsRouter()

    @ws.message("/inline")
    async def inline(data: str, guard: Inline, channel: Channel) -> None:
        Seen.handler.append(threading.get_ident())
        await channel.send(data)

    @ws.message("/blocking")
    async def blocking(data: str, guard: Blocking, channel: Channel) -> None:
        Seen.handler.append(threading.get_ident())
        await channel.send(data)

    @ws.message("/free")
    async def free(data: str, channel: Channel) -> None:
        await channel.send(data)

    app = FastAPI()
    ws.install(app)
    return app


@pytest.fixture(autouse=True)
def fresh() -> None:
    Seen.guard.clear()
    Seen.handler.clear()
    Blocking.release.clear()


async def test_a_guard_declared_inline_runs_on_the_event_loop() -> None:
    async with serve(make_app()) as url, connect(f"ws://{url}/inline") as client:
        await client.send("hi")
        assert await client.recv() == "hi"
    assert len(Seen.guard) == 1 and Seen.guard == Seen.handler  # the loop's thread, both


async def test_a_guard_declared_blocking_runs_in_a_thread_and_the_loop_serves_others() -> None:
    async with serve(make_app()) as url:

        async def blocked_client() -> str | bytes:
            async with connect(f"ws://{url}/blocking") as client:
                await client.send("hi")
                return await client.recv()

        opening = asyncio.create_task(blocked_client())
        try:
            for _ in range(100):  # bounded: until the guard is waiting in its thread
                if Seen.guard:
                    break
                await asyncio.sleep(0.02)
            assert Seen.guard, "the blocking guard never ran"
            # While it blocks, the same worker's event loop serves another connection.
            async with connect(f"ws://{url}/free") as other:
                await other.send("still served")
                assert await other.recv(timeout=2) == "still served"
            assert not opening.done()
        finally:
            Blocking.release.set()
        assert await asyncio.wait_for(opening, 5) == "hi"
    assert len(Seen.guard) == 1 and len(Seen.handler) == 1
    assert Seen.guard[0] != Seen.handler[0]  # the guard ran off the loop's thread


def test_an_undeclared_sync_guard_warns_once_where_it_is_defined() -> None:
    class Undeclared(Guard):
        @classmethod
        def from_request(cls, request: HandshakeRequest) -> Undeclared:
            return cls()

    ws = WsRouter()
    with pytest.warns(SyncGuardWarning, match=r"Undeclared\.from_request is a plain def") as caught:

        @ws.message("/a")
        async def first(data: str, guard: Undeclared) -> None:
            pass

    assert [w.filename for w in caught] == [__file__]  # points at the guard, not at wsroute
    with warnings.catch_warnings():
        warnings.simplefilter("error", SyncGuardWarning)

        @ws.message("/b")
        async def second(data: str, guard: Undeclared) -> None:  # the same guard: no warning again
            pass


def test_declared_and_async_guards_do_not_warn() -> None:
    class Quiet(Guard):
        @classmethod
        async def from_request(cls, request: HandshakeRequest) -> Quiet:
            return cls()

    ws = WsRouter()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SyncGuardWarning)

        @ws.message("/c")
        async def handler(data: str, a: Inline, b: Blocking, c: Quiet) -> None:
            pass


def test_sync_to_thread_must_be_a_bool() -> None:
    class Vague(Guard):
        sync_to_thread = "yes"  # type: ignore[assignment]

        @classmethod
        def from_request(cls, request: HandshakeRequest) -> Vague:
            return cls()

    ws = WsRouter()
    with pytest.raises(RegistrationError, match=r"Vague\.sync_to_thread is 'yes'.*set it to False"):

        @ws.message("/d")
        async def handler(data: str, guard: Vague) -> None:
            pass


def test_a_guard_built_by_an_async_callable_object_is_async() -> None:
    class Builder:
        async def __call__(self, request: HandshakeRequest) -> object:
            return object()

    class Built:
        from_request = Builder()

    ws = WsRouter()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SyncGuardWarning)

        @ws.message("/e")
        async def handler(data: str, guard: Built) -> None:
            pass
