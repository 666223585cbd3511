"""Server CPU per operation, split by where it is spent, from `run.py --profile` output.

    python bench/profile_breakdown.py echo100-raw echo100-wsroute_bare echo100-wsroute
    python bench/profile_breakdown.py fanout5000-naive fanout5000-wsroute

Each profile's samples (py-spy, on-CPU, the measured window only) are attributed to the
innermost Python frame and scaled by the run's server CPU per message/delivery (the first
lines of ``<name>.summary.txt``), so the columns are µs per operation and add up to it.
uvloop's C code shows as its caller ``Runner.run``; a socket write as the uvicorn line that
calls ``transport.write``.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

PROFILES = Path(__file__).resolve().parent / "profiles"
# The uvicorn lines that call `transport.write` (0.54: 504/506; 0.55: 514).
WRITE_LINES = (
    "websockets_sansio_impl.py:504)",
    "websockets_sansio_impl.py:506)",
    "websockets_sansio_impl.py:514)",
)


def bucket(frame: str) -> str:
    if "runners.py:118)" in frame:
        return "uvloop C: epoll, socket reads, callbacks"
    if frame.endswith(WRITE_LINES):
        return "transport.write (the send syscall)"
    for mark, name in (
        ("(wsroute/", "wsroute"),
        ("(starlette/", "starlette + fastapi"),
        ("(fastapi/", "starlette + fastapi"),
        ("(uvicorn/", "uvicorn (Python)"),
        ("(websockets/", "websockets (framing, parsing)"),
        ("(asyncio/", "asyncio (Python)"),
        ("(bench/apps", "the app's handler"),
    ):
        if mark in frame:
            return name
    return "other"


def load(name: str) -> tuple[float, Counter[str], Counter[str]]:
    head = (PROFILES / f"{name}.summary.txt").read_text()
    match = re.search(r"operation: ([\d.]+)", head)
    per = float(match.group(1)) if match else 1.0
    buckets: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in (PROFILES / f"{name}.raw.txt").read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        leaf = stack.split(";")[-1]
        buckets[bucket(leaf)] += n
        leaves[leaf] += n
    scale = per / total if total else 0.0
    return (
        per,
        Counter({k: v * scale for k, v in buckets.items()}),
        Counter({k: v * scale for k, v in leaves.items()}),
    )


def main(names: list[str]) -> None:
    data = {name: load(name) for name in names}
    keys = sorted(
        {k for d in data.values() for k in d[1]}, key=lambda k: -max(d[1][k] for d in data.values())
    )
    width = max(len(n) for n in names) + 2
    print("µs per operation".ljust(42) + "".join(n.rjust(width) for n in names))
    print("server CPU, total".ljust(42) + "".join(f"{data[n][0]:{width}.2f}" for n in names))
    for key in keys:
        print(key.ljust(42) + "".join(f"{data[n][1][key]:{width}.2f}" for n in names))
    last = names[-1]
    print(f"\nheaviest lines of {last} (µs per operation, self time):")
    for leaf, us in data[last][2].most_common(25):
        print(f"  {us:6.2f}  {leaf}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["echo100-raw", "echo100-wsroute_bare", "echo100-wsroute"])
