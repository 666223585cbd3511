"""`start_eagerly`: the teardown of a socket runs in the closing step unless it has to wait."""

from __future__ import annotations

import asyncio

import pytest

from wsroute.eager import start_eagerly


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
