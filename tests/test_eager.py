"""`start_eagerly`: a socket's teardown, and a join body, run in the step that starts them
unless they have to wait."""

from __future__ import annotations

import asyncio
import contextvars

import pytest
from fastapi import FastAPI

from support.clients import connect
from wsroute import Channel, WsRouter
from wsroute.eager import start_eagerly
from wsroute.testing import serve


async def test_a_coroutine_that_never_waits_finishes_in_the_callers_step() -> None:
    ran: list[str] = []

    async def teardown() -> None:
        ran.append("done")

    assert start_eagerly(teardown()) is None
    assert ran == ["done"]


async def test_a_coroutine_that_waits_goes_on_in_a_task_with_results_and_errors() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    failing: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    seen: list[object] = []

    async def teardown() -> None:
        seen.append("first step")
        seen.append(await gate)  # the value the future resolves to reaches the coroutine
        await asyncio.sleep(0)  # a bare yield, as asyncio.sleep(0) does
        try:
            await failing
        except KeyError as exc:
            seen.append(repr(exc))

    task = start_eagerly(teardown())
    assert task is not None
    assert seen == ["first step"]  # ran up to its first wait, in this step
    gate.set_result(7)
    await asyncio.sleep(0)
    failing.set_exception(KeyError("gone"))
    await asyncio.wait_for(task, 1)
    assert seen == ["first step", 7, "KeyError('gone')"]


async def test_cancelling_the_task_reaches_the_coroutine_where_it_waits() -> None:
    cleaned: list[str] = []

    async def teardown() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("finally ran")

    task = start_eagerly(teardown())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally ran"]


async def test_an_error_of_the_first_step_reaches_the_caller() -> None:
    async def teardown() -> None:
        raise RuntimeError("broken before any wait")

    with pytest.raises(RuntimeError, match="broken before any wait"):
        start_eagerly(teardown())


async def test_with_a_context_every_step_runs_in_it_and_the_caller_sees_none_of_it() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="caller's")
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def join() -> None:
        var.set("join's")
        await gate
        seen.append(var.get())  # the second step, in the task, sees what the first set

    context = contextvars.copy_context()
    task = start_eagerly(join(), context, "wsroute join")
    assert task is not None and task.get_name() == "wsroute join"
    assert var.get() == "caller's" and context[var] == "join's"
    gate.set_result(None)
    await asyncio.wait_for(task, 1)
    assert seen == ["join's"]


# --- a join body that returns at once needs no task --------------------------------------------

trace: contextvars.ContextVar[str] = contextvars.ContextVar("trace", default="unset")


def _join_app() -> FastAPI:
    app = FastAPI()
    ws = WsRouter()

    @ws.join("/quick")
    async def quick(channel: Channel) -> None:
        trace.set("set by the join")
        await channel.send(f"tasks {_join_tasks()}")

    @ws.join("/slow")
    async def slow(channel: Channel) -> None:
        trace.set("set by the join")
        await asyncio.sleep(0.01)
        await channel.send(f"tasks {_join_tasks()}")

    @ws.message("/quick")
    @ws.message("/slow")
    async def echo(data: str, channel: Channel) -> None:
        await channel.send(f"{data} {trace.get()}")

    ws.install(app)
    return app


def _join_tasks() -> int:
    """Tasks running a join body: a task of its own (``BaseConnection._join``), or the
    eager start's continuation."""
    return sum(
        1
        for task in asyncio.all_tasks()
        if task.get_name() == "wsroute join" or task.get_coro().__qualname__.endswith("._join")  # type: ignore[union-attr]
    )


@pytest.mark.parametrize("path", ["/quick", "/slow"])
async def test_a_join_runs_before_the_sessions_messages_and_keeps_its_context(path: str) -> None:
    async with serve(_join_app()) as address, connect(f"ws://{address}{path}") as client:
        await client.send("hello")  # sent at once: it waits for the join body
        # A join that never waits ran in the step that opened the socket, with no task;
        # one that waited went on in a task of its own.
        assert await client.recv() == ("tasks 0" if path == "/quick" else "tasks 1")
        reply = await client.recv()
        if path == "/quick":
            # What the join set stays its own, as it did when every join had a task.
            assert reply == "hello unset"
        else:
            # (Queued behind a join that waited, a message is handled by the join's task
            # once the body returns, in its context: as before.)
            assert reply.startswith("hello ")
