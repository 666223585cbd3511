"""The progress of a run on stderr: which unit is running, how many of how many, the time
elapsed and an estimate of the time left.

A *unit* is one measured run of a scenario's variant in one round (``fanout-1000 wsroute
round 2/5``), or one in-process benchmark (``micro``). `run.py` plans the units of a run
before it starts (a dry run of the scenarios) and tells `Progress` when a scenario starts,
when a unit starts (a server is asked for) and when one ends (its result is recorded).

The line is printed at each unit's start; it is a plain line even on a terminal, because
the scenarios print their results to stdout between two of them::

    [12/87] fanout-1000 wsroute round 2/5 · 3m10s elapsed · ~9m left

The formatting and the estimate are pure functions; check their examples with
``bench/.venv/bin/python -m doctest bench/progress.py``.
"""

# ruff: noqa: RUF002  (the middle dots are printed on purpose)

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass
class Unit:
    """One planned unit: what the line says, its group (the units of one scenario and set of
    parameters, which take about the same time), its planned seconds, and whether its start
    is signalled by a server request (else it starts when the one before it ends)."""

    scenario: str
    label: str
    group: str
    planned_s: float
    hooked: bool = True


def fmt_duration(seconds: float) -> str:
    """A duration as the line shows it.

    >>> fmt_duration(7.4)
    '7s'
    >>> fmt_duration(190)
    '3m10s'
    >>> fmt_duration(3725)
    '1h02m'
    >>> fmt_duration(-3)
    '0s'
    """
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def fmt_left(seconds: float | None) -> str:
    """The estimate of the time left: whole minutes from two minutes on, else seconds to the 5.

    >>> fmt_left(None)
    '~? left'
    >>> fmt_left(41)
    '~40s left'
    >>> fmt_left(2)
    '~5s left'
    >>> fmt_left(545)
    '~9m left'
    >>> fmt_left(4000)
    '~1h06m left'
    """
    if seconds is None:
        return "~? left"
    if seconds < 120:
        return f"~{max(5, 5 * round(seconds / 5))}s left"
    if seconds < 3600:
        return f"~{round(seconds / 60)}m left"
    return f"~{fmt_duration(seconds)} left"


def unit_label(
    scenario: str, params: dict[str, Any] | None, variant: str | None, rep: int, reps: int, ws: str = ""
) -> str:
    """The name of a unit: the scenario with its parameters' values, the variant, the round.

    >>> unit_label("fanout", {"subs": 1000}, "wsroute", 1, 5)
    'fanout-1000 wsroute round 2/5'
    >>> unit_label("fanout", {"subs": 5000, "window": 1}, "naive", 0, 7)
    'fanout-5000-w1 naive round 1/7'
    >>> unit_label("echo", {"conns": 10}, "raw", 0, 5, ws="wsproto")
    'echo-10-wsproto raw round 1/5'
    >>> unit_label("history_fanout", {"subs": 1000, "broker": "memory"}, "history", 2, 3)
    'history_fanout-1000-memory history round 3/3'
    >>> unit_label("micro", None, None, 0, 1)
    'micro'
    """
    values = [f"w{v}" if k == "window" else str(v) for k, v in (params or {}).items()]
    name = "-".join([scenario, *values, *([ws] if ws else [])])
    if variant is None:
        return name
    return f"{name} {variant}" + (f" round {rep + 1}/{reps}" if reps > 1 or rep else "")


def planned_seconds(spec: dict[str, Any]) -> float:
    """A first guess of a unit's wall time from the client's load (what the runs recorded in
    ``bench/results`` took): the measured window and its warm-up, the client process's start,
    the subscribers' connections (about 1.1 s per 1000), a storm's phases, a churner.

    >>> planned_seconds({"scenario": "echo", "duration": 2.0, "warmup": 0.3})
    2.5
    >>> planned_seconds({"scenario": "fanout", "subs": 5000, "duration": 2.0, "warmup": 0.3})
    8.0
    >>> planned_seconds({"scenario": "storm", "clients": 1000})
    2.5
    >>> planned_seconds({"scenario": "handshake", "conns": 1000})
    2.0
    """
    kind = spec.get("scenario")
    if kind == "storm":
        return 1.0 + 1.5 * spec.get("clients", 0) / 1000
    if kind == "handshake":
        return 1.0 + spec.get("conns", 0) / 1000
    seconds = float(spec.get("duration", 0.0)) + float(spec.get("warmup", 0.0)) + 0.2
    if kind == "fanout":
        seconds += 1.1 * spec.get("subs", 0) / 1000
    if "churn" in spec:
        seconds += 1.0
    return round(seconds, 3)


def estimate_left(
    remaining: Iterable[tuple[str, float]], finished: Sequence[tuple[str, float, float]]
) -> float | None:
    """Seconds left for the `remaining` units ``(group, planned seconds)``, knowing the
    `finished` ones ``(group, planned, actual seconds)``: a unit whose group has finished
    units is taken to last their mean; any other its planned time scaled by how the finished
    units compared with their plan (actual / planned over all of them, kept within 0.5–4).
    Before any unit has finished: the planned times as they are.

    >>> estimate_left([("fanout-1000", 3.0), ("fanout-1000", 3.0)], [])
    6.0
    >>> estimate_left([("fanout-1000", 3.0), ("echo-1", 2.0)], [("fanout-1000", 3.0, 4.5)])
    7.5
    >>> estimate_left([], [("echo-1", 2.5, 2.5)])
    0.0
    >>> estimate_left([("memory-5000", 6.0)], [("echo-1", 2.5, 250.0)])
    24.0
    """
    by_group: dict[str, list[float]] = {}
    planned_done = actual_done = 0.0
    for group, planned, actual in finished:
        by_group.setdefault(group, []).append(actual)
        planned_done += planned
        actual_done += actual
    scale = min(4.0, max(0.5, actual_done / planned_done)) if planned_done > 0 else 1.0
    left = 0.0
    for group, planned in remaining:
        seen = by_group.get(group)
        left += sum(seen) / len(seen) if seen else planned * scale
    return round(left, 3)


def status_line(index: int, total: int, label: str, elapsed: float, left: float | None) -> str:
    """The line printed when unit `index` (1-based) starts.

    >>> status_line(12, 87, "fanout-1000 wsroute round 2/5", 190, 545)
    '[12/87] fanout-1000 wsroute round 2/5 · 3m10s elapsed · ~9m left'
    """
    width = len(str(total))
    return f"[{index:>{width}}/{total}] {label} · {fmt_duration(elapsed)} elapsed · {fmt_left(left)}"


class Progress:
    """Follows a run along its planned units and prints a line at each unit's start.

    `scenario_start` resynchronises the count at every scenario (a scenario that ran fewer or
    more units than planned, after an error, does not shift the rest); `unit_start` is
    called when a server is asked for (the first call of every unit of `run_rounds`) and
    prints the unit's line unless it was printed already; `unit_done` when a result is
    recorded. A unit that is not `hooked` (the memory scenario's fresh servers, the
    in-process benchmarks) is announced when the unit before it in its scenario ends.
    """

    def __init__(
        self, units: list[Unit], out: TextIO | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.units = units
        self.out = out if out is not None else sys.stderr
        self.clock = clock
        self.t0 = clock()
        self.mark = self.t0  # when the current unit started
        self.done = 0  # units finished (the current unit is units[done])
        self.announced = 0  # units whose line was printed
        self.finished: list[tuple[str, float, float]] = []

    def left(self) -> float | None:
        return estimate_left(((u.group, u.planned_s) for u in self.units[self.done :]), self.finished)

    def _announce(self) -> None:
        if self.done >= len(self.units) or self.announced > self.done:
            return
        self.announced = self.done + 1
        unit = self.units[self.done]
        line = status_line(self.done + 1, len(self.units), unit.label, self.clock() - self.t0, self.left())
        print(line, file=self.out, flush=True)

    def scenario_start(self, name: str) -> None:
        first = next((i for i, u in enumerate(self.units) if u.scenario == name), None)
        if first is None:
            return
        self.done = first
        self.announced = min(self.announced, first)
        self.mark = self.clock()
        self._announce()

    def unit_start(self) -> None:
        self._announce()

    def unit_done(self, record: dict[str, Any]) -> None:
        if record.get("scenario") == "meta" or self.done >= len(self.units):
            return
        now = self.clock()
        unit = self.units[self.done]
        self.finished.append((unit.group, unit.planned_s, now - self.mark))
        self.mark = now
        self.done += 1
        if self.done < len(self.units):
            nxt = self.units[self.done]
            if not nxt.hooked and nxt.scenario == unit.scenario:
                self._announce()

    def finish(self) -> None:
        elapsed = self.clock() - self.t0
        print(
            f"[{self.done}/{len(self.units)}] finished · {fmt_duration(elapsed)} in all",
            file=self.out,
            flush=True,
        )
