"""Limits and policies every route has, with their defaults (docs/errors.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from wsroute.outbox import SlowConsumerPolicy

MiB = 1024 * 1024

ExceptionHandler = Callable[[Any, Any], Awaitable[None]]
"""``async def handler(channel: Channel, exc: SomeError) -> None``."""


def check_rate_limit(rate_limit: Any, where: str = "") -> None:
    """Raise `ValueError` unless `rate_limit` is None or ``(messages, seconds)``, both positive.

    `where` names the route it was given to, for the message.
    """
    if rate_limit is None:
        return
    try:
        messages, seconds = rate_limit
        valid = messages > 0 and seconds > 0
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"rate_limit={rate_limit!r}{where}: use (messages, seconds), both positive, or None")


@dataclasses.dataclass
class Settings:
    """Router-wide limits. Every field is a keyword argument of `WsRouter`.

    - `max_message_size`: largest accepted message in bytes (1 MiB); larger → close 1009.
    - `max_queue`: outgoing messages queued per connection (1024); `max_queue_bytes`: the
      same bound in bytes (None: no byte bound).
    - `slow_consumer`: what a full queue does: ``"disconnect"`` (close 1008, default),
      ``"drop_oldest"`` or ``"drop_newest"``.
    - `rate_limit`: ``(messages, seconds)`` each connection may send (None: unlimited), the
      default of every route's own `rate_limit`. A multiplexed topic is a connection of its
      own; the frames on such a socket that no topic counts (control actions, data for no
      topic) have this allowance too. A message over it raises `RateLimited` (default: 1008).
    - `allowed_origins`: extra origins allowed to connect from browsers, as
      ``"https://example.com"``; ``["*"]`` allows any. Same-origin and no-Origin clients
      are always allowed.
    - `max_topics`: topics per multiplexed socket, the connect topic included (64).
    - `close_timeout`: seconds to flush queued messages before a server-side close (5).
    """

    max_message_size: int = MiB
    max_queue: int = 1024
    max_queue_bytes: int | None = None
    slow_consumer: SlowConsumerPolicy = "disconnect"
    rate_limit: tuple[int, float] | None = None
    allowed_origins: Sequence[str] = ()
    max_topics: int = 64
    close_timeout: float = 5.0
    multiplex: bool = True
    exception_handlers: dict[type[BaseException], ExceptionHandler] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_message_size <= 0 or self.max_queue <= 0 or self.max_topics <= 0:
            raise ValueError("max_message_size, max_queue and max_topics must be positive")
        if self.slow_consumer not in ("disconnect", "drop_oldest", "drop_newest"):
            raise ValueError(
                f"slow_consumer={self.slow_consumer!r}: use 'disconnect', 'drop_oldest' or 'drop_newest'"
            )
        check_rate_limit(self.rate_limit)
        self.allowed_origins = tuple(origin.rstrip("/").lower() for origin in self.allowed_origins)

    def exception_handler_for(self, exc: BaseException) -> ExceptionHandler | None:
        """The most specific registered handler for `exc`, by its class's MRO."""
        if not self.exception_handlers:
            return None
        for cls in type(exc).__mro__:
            found = self.exception_handlers.get(cls)
            if found is not None:
                return found
        return None
