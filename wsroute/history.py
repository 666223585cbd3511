"""History: what a topic keeps of its broadcasts, and where each one stands in its stream.

Every broadcast to a topic with history gets a `StreamPosition`: an offset (+1 per
publication, per topic) and the stream's epoch, an opaque string that changes whenever the
stored stream may have lost data. A client that knows its last position can ask for what it
missed (docs/history.md). Topics opt in per route pattern with ``ws.topic(pattern,
history=…)``; `TopicRules` maps a concrete topic to its pattern's `TopicOptions`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator
from typing import NamedTuple

from starlette.types import Message

from wsroute.errors import RegistrationError

DEFAULT_RECOVERY_LIMIT = 300
"""Most publications a resubscribing client is replayed; beyond it recovery fails."""

POSITION_TTL = 7 * 24 * 3600.0
"""Seconds a topic's epoch and offset are kept after its last publication.

Longer than the publications themselves (`history_ttl`): a client that saw the last
publication of a topic that went quiet still recovers (it missed nothing)."""


class StreamPosition(NamedTuple):
    """Where a topic's stream stands: its `epoch` and the `offset` of its last publication
    (0 before the first one)."""

    epoch: str
    offset: int


@dataclasses.dataclass(frozen=True, slots=True)
class Publication:
    """One stored broadcast: its `offset` and `epoch`, and `data` exactly as sent on the
    wire (`str` for a text frame, `bytes` for a binary one)."""

    offset: int
    epoch: str
    data: str | bytes


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """How much of a topic's stream a backend keeps: the last `size` publications, each for
    at most `ttl` seconds (None: until pushed out by size)."""

    size: int
    ttl: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class StreamRead:
    """What a backend read from a stream in one atomic step: its current `position`, the
    offset of the `oldest` publication it still holds (``position.offset + 1`` when it
    holds none), and the publications asked for (oldest first unless asked in reverse)."""

    position: StreamPosition
    oldest: int
    publications: list[Publication]

    def holds_all_after(self, since: StreamPosition) -> bool:
        """True when the stream still holds every publication after `since` (same epoch,
        not ahead of the stream, nothing trimmed in between)."""
        position = self.position
        return since.epoch == position.epoch and self.oldest - 1 <= since.offset <= position.offset


@dataclasses.dataclass(frozen=True, slots=True)
class TopicOptions:
    """What ``ws.topic(pattern, …)`` switched on for the topics of one route pattern."""

    pattern: str
    history: int = 0
    """Publications kept per topic; 0: no history."""
    history_ttl: float | None = None
    """Seconds a publication is kept; None: until pushed out by `history`."""
    recovery_limit: int = DEFAULT_RECOVERY_LIMIT
    """Most publications replayed to a resubscribing client."""
    presence: bool = False
    policy: HistoryPolicy | None = dataclasses.field(init=False, default=None)
    """What the backend keeps of each topic's stream; None without history."""

    def __post_init__(self) -> None:
        where = f"ws.topic({self.pattern!r})"
        if not isinstance(self.history, int) or self.history < 0:
            raise RegistrationError(f"{where}: history must be an int >= 0, not {self.history!r}")
        if self.history_ttl is not None and not 0 < self.history_ttl < math.inf:
            # inf (and NaN) would pass a `> 0` check and break every publish on Redis.
            raise RegistrationError(
                f"{where}: history_ttl must be a finite number of seconds > 0, or None "
                f"(no age limit), not {self.history_ttl}"
            )
        if self.history_ttl is not None and not self.history:
            raise RegistrationError(f"{where}: history_ttl needs history=N (publications kept per topic)")
        if not isinstance(self.recovery_limit, int) or self.recovery_limit < 1:
            raise RegistrationError(f"{where}: recovery_limit must be an int >= 1, not {self.recovery_limit}")
        if self.history:
            # Built once: every broadcast to the topic hands it to the backend.
            object.__setattr__(self, "policy", HistoryPolicy(self.history, self.history_ttl))


# Topics looked up since the rules last changed; cleared when it grows past this (a server
# sees a bounded working set of topics, but a publisher may name any number of them).
_CACHE_LIMIT = 10_000


class TopicRules:
    """Route patterns and their `TopicOptions`; `get` maps a concrete topic to its options."""

    def __init__(self) -> None:
        self._rules: list[tuple[int, re.Pattern[str], TopicOptions]] = []
        self._cache: dict[str, TopicOptions | None] = {}

    def __bool__(self) -> bool:
        return bool(self._rules)

    def __iter__(self) -> Iterator[TopicOptions]:
        return (options for _, _, options in self._rules)

    def add(self, options: TopicOptions, regex: re.Pattern[str], rank: int) -> None:
        """Add the options of a pattern (matched by `regex`; patterns of lower `rank` win, as
        handlers do); a pattern given twice is a `RegistrationError`."""
        if self.by_pattern(options.pattern) is not None:
            raise RegistrationError(f"ws.topic({options.pattern!r}) is configured twice")
        self._rules.append((rank, regex, options))
        self._rules.sort(key=lambda rule: rule[0])  # stable: registration order within a rank
        self._cache.clear()

    def get(self, topic: str) -> TopicOptions | None:
        """The options of the best pattern `topic` matches (its query string ignored)."""
        cache = self._cache
        try:
            return cache[topic]
        except KeyError:
            pass
        path = topic.partition("?")[0]
        found = next((options for _, regex, options in self._rules if regex.match(path)), None)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[topic] = found
        return found

    def by_pattern(self, pattern: str) -> TopicOptions | None:
        """The options configured for exactly `pattern`."""
        return next((options for _, _, options in self._rules if options.pattern == pattern), None)


def recovery(read: StreamRead, since: StreamPosition, limit: int) -> list[Publication] | None:
    """The publications a client at `since` missed, from `read` (the stream after
    ``since.offset``, oldest first, at most ``limit + 1`` of them); None when they cannot
    all be served: another epoch, a position ahead of the stream, some trimmed (by size or
    age), or more than `limit` missed."""
    if not read.holds_all_after(since) or read.position.offset - since.offset > limit:
        return None
    return read.publications


class Positions:
    """Where a positions subscription stands: the epoch and offset of the last publication
    sent to its client, and the publications `held` while it catches up (None once live)."""

    __slots__ = ("epoch", "held", "offset")

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.offset = 0
        self.held: list[tuple[Message, StreamPosition]] | None = []
