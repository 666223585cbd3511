"""The token bucket behind ``rate_limit=(messages, seconds)``: one per connection or topic."""

from __future__ import annotations

import asyncio


class TokenBucket:
    """At most `messages` per `seconds` on average, in bursts of up to `messages`."""

    __slots__ = ("capacity", "clock", "last", "refill", "tokens")

    def __init__(self, messages: int, seconds: float) -> None:
        self.capacity = float(messages)
        self.refill = messages / seconds
        self.tokens = self.capacity
        self.clock = asyncio.get_running_loop().time
        self.last = self.clock()

    def take(self) -> bool:
        """Spend a token for one message; False when none is left (the message is over)."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.refill)
        self.last = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
