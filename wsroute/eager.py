"""Start a coroutine in the caller's step, and give it a task only if it has to wait.

A connection's teardown (unsubscribe, leave, dependency teardown) runs in a task of its own
so a cancellation of the caller cannot cut it short, and a join body beside the receive
loop. Most teardowns never wait (a memory
broker, no leave handler), and a task per closed socket then costs more than the teardown
itself: an object, a scheduled step and a turn of the event loop before the socket is gone
(or, for a join that returns at once, before its OK'd topic is open).
`start_eagerly` runs the coroutine's first step at once, as Python 3.12's eager tasks do,
and only a coroutine that suspends is continued in a task, from where it stopped. The
outbox starts each send the same way (`Resume`).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def start_eagerly(
    coro: Coroutine[Any, Any, None], context: contextvars.Context | None = None, name: str = "wsroute eager"
) -> asyncio.Task[None] | None:
    """Run `coro` until it first waits; None when it finished without waiting, else the
    task that continues it. An exception of that first step propagates to the caller.

    With `context`, every step runs in it, as in a task made with that context (user code:
    the context variables it sets stay its own)."""
    # Not `run_eagerly(...)[0]`: every connection's teardown comes here, and that call and
    # its tuple were 1% of an in-process open+close (bench/instructions.py).
    try:
        waiting = coro.send(None) if context is None else context.run(coro.send, None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_continue(coro, waiting), name=name, context=context)


def run_eagerly(
    coro: Coroutine[Any, Any, T], context: contextvars.Context | None = None, name: str = "wsroute eager"
) -> tuple[asyncio.Task[T] | None, T | None]:
    """`start_eagerly` for a coroutine with a result: ``(None, result)`` when it finished
    without waiting, ``(task, None)`` when the task continues it."""
    try:
        waiting = coro.send(None) if context is None else context.run(coro.send, None)
    except StopIteration as done:
        result: T = done.value
        return None, result
    task = asyncio.get_running_loop().create_task(_continue(coro, waiting), name=name, context=context)
    return task, None


async def _continue(coro: Coroutine[Any, Any, T], waiting: Any) -> T:
    return await Resume(coro, waiting)


class Resume(Generic[T]):
    """``yield from coro`` (PEP 380) for a coroutine whose first step has already run and
    yielded `waiting` (the future it waits on): the task awaiting this waits on that future
    first, then passes every resumption, result and exception (a cancellation included)
    through to `coro`."""

    __slots__ = ("coro", "waiting")

    def __init__(self, coro: Coroutine[Any, Any, T], waiting: Any) -> None:
        self.coro = coro
        self.waiting = waiting

    def __await__(self) -> Generator[Any, Any, T]:
        coro, waiting = self.coro, self.waiting
        self.waiting = None
        while True:
            try:
                sent = yield waiting
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # handed to the coroutine, as `yield from` does
                try:
                    waiting = coro.throw(exc)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
            else:
                try:
                    waiting = coro.send(sent)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
