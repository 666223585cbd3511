"""What a run prints and writes: the per-run lines, the JSON-lines record, the markdown table,
and docs/benchmarks.md (the table of the latest full run after the notes in bench/notes.md).
"""

# ruff: noqa: RUF001, RUF002  (the multiplication signs and dashes in the strings are printed on purpose)

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config import BENCH, DOCS, RESULTS, ROOT, Config
from summary import (
    CLEAN,
    SUMMARY_SPEC,
    Row,
    cpu_per_op,
    fmt_ratio,
    med,
    paired,
    record_params,
    summarize,
    target_applies,
    verdict_of,
)

CHARTS = DOCS.with_suffix("")  # docs/benchmarks/: the page's SVG charts (bench/charts.py)


class Recorder:
    """Appends every measurement to the JSON-lines file and keeps them for the summary."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []
        self.listeners: list[Callable[[dict[str, Any]], None]] = []  # e.g. the run's progress
        path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, record: dict[str, Any]) -> None:
        record = {"time": time.time(), **record}
        self.records.append(record)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        for listener in self.listeners:
            listener(record)


def result_line(scenario: str, r: dict[str, Any]) -> str:
    """The console line of one run: its throughput or latency, and the CPU each side used."""
    cpu = (
        f"cpu srv {'+'.join(f'{u:.0%}' for u in r.get('server_cpu_util', []))} cli {r.get('client_cpu_util', 0):.0%}"  # noqa: E501
        f" stolen {r.get('contention', 0):.0%}"
    )
    if scenario in ("echo", "multiplex", "servers_echo"):
        return f"{r['msg_per_s']:>9.0f} msg/s  p50 {r['rtt_us']['p50']:.0f}us p99 {r['rtt_us']['p99']:.0f}us  {cpu}"  # noqa: E501
    if scenario == "history_storm":
        return (
            f"{r['storm_s'] * 1000:>7.0f} ms  recovered {r['recovered']}/{r['clients']} exact {r['exact']} "
            f"replayed {r['replayed_total']} bad {r['bad']}  {cpu}"
        )
    if "fanout" in scenario or scenario == "presence_churn":
        churn = r.get("churn")
        extra = (
            f"  churn {churn['events_per_s']:.0f}/s skipped {churn['skipped']} err {churn['errors']}"
            if isinstance(churn, dict)
            else ""
        )
        return (
            f"{r['deliveries_per_s']:>9.0f} deliv/s  p99 {r['latency_us']['p99'] / 1000:.1f}ms "
            f"lost {r['lost']}  {cpu}{extra}"
        )
    if scenario == "connect":
        return f"{r['conns_per_s']:>7.0f} conn/s  failed {r['failed']}  {cpu}"
    if scenario == "handshake":
        return (
            f"{r['conns_per_s']:>7.0f} {'subscribe' if r.get('mode') == 'mux' else 'conn'}/s  "
            f"p50 {r['handshake_us']['p50'] / 1000:.1f}ms p99 {r['handshake_us']['p99'] / 1000:.1f}ms  "
            f"failed {r['failed']}  {cpu}"
        )
    if scenario == "reconnect":
        rec_s, acc_s = r.get("recovered_s"), r.get("accepted_s")
        return (
            f"recovered {'-' if rec_s is None else f'{rec_s:.2f}'} s  accepted "
            f"{'-' if acc_s is None else f'{acc_s:.2f}'} s  attempts {r['attempts']} failures "
            f"{r['failures']} never received {r['never_received']}  RSS after/before "
            f"{r.get('rss_ratio', float('nan')):.3f}  {cpu}"
        )
    return json.dumps(r)[:200]


def micro_rows(records: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for r in records:
        if r.get("scenario") != "micro" or "injection" not in r:
            continue
        inj = r["injection"]
        o = inj["overhead_three_us"]
        us = inj["us_per_call"]
        out.append(
            f"| injection overhead, 3 params (Channel, guard, Broker) + `str` message | {o['median']:.2f} µs/event "  # noqa: E501
            f"({o['min']:.2f}–{o['max']:.2f}) | ≤ 5 µs | {'PASS' if o['median'] <= 5 else 'FAIL'} | "
            f"`Session.on_message` {us['wsroute_three']:.2f} µs vs awaiting the bare function {us['bare_three']:.2f} µs |"  # noqa: E501
        )
        out.append(
            f"| injection overhead, message only | {inj['overhead_zero_us']['median']:.2f} µs/event | | | |"
        )
        out.append(
            f"| injection overhead, 3 params + one `yield` dependency (event scope) | "
            f"{inj['overhead_event_dep_us']['median']:.2f} µs/event | | | AsyncExitStack + asynccontextmanager per event |"  # noqa: E501
        )
        for key, label in (
            ("asgi_echo", "receive never suspends"),
            ("asgi_echo_suspending", "receive suspends once"),
        ):
            if key in r:
                per = r[key]["us_per_msg"]
                out.append(
                    f"| in-process ASGI echo, µs/message ({label}) | "
                    + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
                    + " | | | framework CPU only, no uvicorn or network |"
                )
        if "handshakes" in r:
            h = r["handshakes"]["us_per_cycle_best"]
            out.append(
                "| in-process open+close, µs/cycle (best of 3 × 3,000) | "
                + ", ".join(f"{k} {v:.1f}" for k, v in h.items())
                + " | | | one guard at the handshake; `sync_thread` is the thread-pool hop |"
            )
        if "fanout" in r:
            f = r["fanout"]
            out.append(
                f"| in-process fan-out to {f['subs']}, µs/delivery | "
                + ", ".join(f"{k} {v:.2f}" for k, v in f["us_per_delivery"].items())
                + " | | | no uvicorn: the framework's own cost per subscriber |"
            )
        if "memory" in r:
            m = r["memory"]
            parts = []
            for k in ("raw", "fastapi", "wsroute"):
                if k in m:
                    owners = ", ".join(f"{o} {b}" for o, b in m[k]["by_owner"].items())
                    parts.append(f"{k} {m[k]['bytes_per_conn']:,.0f} B ({owners})")
            out.append(
                f"| in-process memory per idle connection ({m['conns']} held; uvicorn's own objects excluded) | "  # noqa: E501
                + "; ".join(parts)
                + " | | | tracemalloc, by the innermost frame of each allocation |"
            )
    out += history_memory_rows(records)
    out += presence_memory_rows(records)
    return out


def presence_memory_rows(records: list[dict[str, Any]]) -> list[str]:
    """The presence figures at 10,000 members, from `bench/presence_mem.py`."""
    out: list[str] = []
    for r in records:
        if r.get("scenario") != "presence_memory" or "brokers" not in r:
            continue
        n = r["members"]
        for broker, b in r["brokers"].items():
            if "error" in b:
                out.append(f"| presence, {broker} | error: {b['error'][:200]} | | | |")
                continue
            p, st = b["presence_us"], b["stats_us"]
            head = f"| presence, {broker}, {n:,} members:"
            out.append(
                f"{head} `broker.presence(topic)` | p50 {p['p50']:,.0f} µs, p99 {p['p99']:,.0f} µs "
                f"({p['n']} calls) | | | every member as a `Member`, one call at a time |"
            )
            if "state_us" in b:  # recorded since the state is handed on as Redis built it
                sj = b["state_us"]
                out.append(
                    f"{head} `broker.presence_state(topic)` | p50 {sj['p50']:,.0f} µs, "
                    f"p99 {sj['p99']:,.0f} µs ({sj['n']} calls) | | | "
                    "the same list as the JSON a watcher is sent |"
                )
            out.append(
                f"{head} `broker.presence_stats(topic)` | p50 {st['p50']:,.1f} µs, p99 {st['p99']:,.1f} µs "
                f"({st['n']} calls) | | | counted, not listed |"
            )
            out.append(
                f"| presence, {broker}: bytes per member | {b['bytes_per_member']:,.0f} B | | | "
                + (
                    "tracemalloc: the `Member` (client id, user, info) and the backend's dicts"
                    if broker == "memory"
                    else "`MEMORY USAGE` of the members, users and node hashes / members"
                )
                + " |"
            )
            out.append(
                f"| presence, {broker}: µs per join / leave (`track` / `untrack`) | "
                f"{b['track_us']:,.1f} / {b['untrack_us']:,.1f} µs | | | one at a time, into the batch |"
            )
            if "untrack_send_ms" in b:
                out.append(
                    f"{head} the batch of all joins / all leaves stored and announced | "
                    f"{b['diff_send_ms']:,.1f} / {b['untrack_send_ms']:,.1f} ms | | | one `presence_update` |"
                )
    return out


def history_memory_rows(records: list[dict[str, Any]]) -> list[str]:
    """The history memory figures (issue 16), from `bench/history_mem.py`."""
    out: list[str] = []
    for r in records:
        if r.get("scenario") != "history_memory" or "memory" not in r:
            continue
        for size, m in r["memory"].items():
            out.append(
                f"| history, memory backend: bytes per stored message beyond the payload, {size}-byte text "
                f"| {m['overhead_bytes_per_msg']:,.0f} B (without history: {m['no_history_bytes_per_msg']:,.0f} B) "  # noqa: E501
                f"| | | tracemalloc over {r['n']:,} publications into `history={r['n']}`; the payload's own "
                f"`str` is {m['payload_str_bytes']:,.0f} B more |"
            )
        for broker, c in r.get("publish_us", {}).items():
            out.append(
                f"| history, {broker}: µs per `broadcast_to` with no subscriber, 100-byte text | "
                f"{c['history']:.2f} with `history=100, history_ttl=600`, {c['history_no_ttl']:.2f} without the ttl, "  # noqa: E501
                f"{c['no_history']:.2f} without history | | | the publish path alone, one publication at a time |"  # noqa: E501
            )
        for size, m in r.get("redis", {}).items():
            if isinstance(m, dict):
                out.append(
                    f"| history, Redis: bytes per stored message, {size}-byte text | {m['bytes_per_msg']:,.0f} B "  # noqa: E501
                    f"| | | `MEMORY USAGE` of the stream key / {m['entries']:,} entries (payload included) |"
                )
    return out


def fanout_window_rows(records: list[dict[str, Any]]) -> list[str]:
    """The fan-out targets by broadcasts in flight (issue #18), one line per size and
    window: the naive loop's deliveries/s, wsroute's and the fastlane's ratio to it (all
    rounds, min–max) with the verdict, and each one's server CPU per delivery. Empty unless
    the run has more than one window."""
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("scenario") == "fanout" and r.get("group_ws", r.get("ws")) == "websockets-sansio":
            params = record_params(r)
            groups.setdefault((params.get("subs", 0), params["window"]), []).append(r)
    if len({window for _subs, window in groups}) < 2:
        return []
    targets = SUMMARY_SPEC["fanout"][3]

    def cpu(recs: list[dict[str, Any]], variant: str) -> str:
        per = [cpu_per_op(r) for r in recs if r["variant"] == variant and r.get("error") is None]
        kept = [v for v in per if v is not None]
        return f"{med(kept):.1f}" if kept else "–"

    out = []
    for (subs, window), recs in sorted(groups.items()):
        naive = [r["deliveries_per_s"] for r in recs if r["variant"] == "naive" and r.get("error") is None]
        cells = [f"{subs:,}", str(window), f"{med(naive):,.0f}" if naive else "–"]
        for variant in ("wsroute", "wsroute_fastlane"):
            all_r = paired(recs, variant, "naive", "deliveries_per_s")
            clean_r = paired(recs, variant, "naive", "deliveries_per_s", clean=True)
            verdict = ""
            if all_r and target_applies("fanout", variant, {"subs": subs, "window": window}):
                verdict = verdict_of(all_r, clean_r, targets[variant][1], True)
            cells += [fmt_ratio(all_r) + (f" n={len(all_r)}" if all_r else ""), verdict]
        cells.append(" / ".join(cpu(recs, v) for v in ("naive", "wsroute", "wsroute_fastlane")))
        out.append("| " + " | ".join(cells) + " |")
    return out


def render_markdown(rows: list[Row], records: list[dict[str, Any]], cfg: Config, elapsed: float) -> str:
    lines = [
        f"Run `{cfg.stamp}` ({'quick' if cfg.quick else 'smoke' if cfg.smoke else 'full'}): "
        f"{cfg.reps} interleaved rounds of "
        f"{cfg.duration:g} s per point, {elapsed / 60:.1f} min in all.",
        "",
        "Columns: *ratio* = median of the per-round ratios variant/baseline over all rounds (min–max); "
        f"*clean* = the same over the rounds where no other process, and not the hypervisor, took more "
        f"than {CLEAN:.0%} of the window from our server or client (n = rounds kept); *CPU ratio* = "
        "baseline server CPU per operation / variant's (> 1: the variant spends less CPU per message). "
        "The verdict uses *clean* when it has ≥ 3 rounds, else *ratio* (marked noisy). "
        "*CPU* = server / client utilisation of one core, and the share of the window stolen by "
        "other processes or the hypervisor (steal).",
        "",
        "| scenario | params | variant | median | ratio (min–max) | clean | CPU ratio | target | verdict | CPU srv / cli / stolen | notes |",  # noqa: E501
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.scenario} | {row.params} | {row.variant} | {row.value} | {row.ratio} | {row.clean} | "
            f"{row.cpu_ratio} | {row.target} | {row.verdict} | {row.cpu} | {row.extra} |"
        )
    windows = fanout_window_rows(records)
    if windows:
        lines += [
            "",
            "Fan-out by broadcasts in flight (*ratio* over all rounds; the verdict as above: "
            "wsroute ≥ 0.95× the naive loop, the fastlane ≥ 1.4× at 1000 and 5000):",
            "",
            "| subscribers | in flight | naive deliveries/s | wsroute ÷ naive | verdict | fastlane ÷ naive | verdict | server µs CPU/delivery: naive / wsroute / fastlane |",  # noqa: E501
            "|---|---|---|---|---|---|---|---|",
            *windows,
        ]
    micro = micro_rows(records)
    if micro:
        lines += [
            "",
            "| micro-benchmark | result | target | verdict | notes |",
            "|---|---|---|---|---|",
            *micro,
        ]
    return "\n".join(lines) + "\n"


def machine() -> str:
    import psutil

    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = []
    for pkg in (
        "uvicorn",
        "websockets",
        "wsproto",
        "starlette",
        "fastapi",
        "picows",
        "uvloop",
        "python-socketio",
        "litestar",
        "broadcaster",
    ):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions.append(f"{pkg} {version(pkg)}")
    load = os.getloadavg()
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "wsroute"], capture_output=True, text=True)
    head = commit.stdout.strip() + (" + uncommitted changes in wsroute/" if dirty.stdout.strip() else "")
    return (
        f"wsroute at {head}; {cpu}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; " + ", ".join(versions)
    )


DOC_TITLE = """# Benchmarks

The suite lives in `bench/` (see `bench/README.md`). Every figure that matters is a **ratio
against a baseline measured in the same run**: the variants of a scenario run interleaved
(A, B, A, B, … with the order reversed every other round), and the table gives the median of
the per-round ratios with their spread (min–max). Absolute numbers are context only: the
benchmark machine is small (2 cores) and shared with other work.

"""

DOC_HEAD = """## How to reproduce

```sh
python3 bench/run.py --setup     # bench/.venv: bench/requirements.txt + wsroute[redis], editable
python3 bench/run.py --quick     # about two minutes, the targets only
python3 bench/run.py             # the full suite (writes bench/results/ and this page)
python3 bench/run.py --profile   # py-spy profiles of wsroute's echo and fan-out paths
python3 bench/run.py --report-only  # this page and its charts again, from bench/results/
```

Redis (for the cross-process scenario) is expected at 127.0.0.1:6379; without it that
scenario is skipped.

## Set-up

- Servers: uvicorn, one worker, uvloop + httptools, `--ws websockets-sansio` (the targets;
  `wsproto` rows are context), on 127.0.0.1, started and stopped by the runner, pinned to
  CPU 0. Load client: picows on uvloop in a separate process pinned to CPU 1. The CPU column
  is the share of one core each side used inside the measured window: a server at ~100% is
  the bottleneck; a client near 100% means the figure is a lower bound.
- Echo: closed loop, one message in flight per connection, 32-byte text.
- Fan-out: one publisher, N subscribers on one topic, 64-byte text, a window of 4
  broadcasts in flight (the next is published when the oldest reached every subscriber),
  and since issue #18 also 1 and 2 (`window` in the table's params; records without it ran
  with 4; the peers run at 4 only); every delivery is counted and `lost` is sent ×
  subscribers − delivered after a drain.
  Latency is publisher send → subscriber receive, both in the client process.
- Connect: 8 concurrent loops of open → accepted → close, through a guard (wsroute) or a
  `Depends` (FastAPI).
- Handshake rate: 1000 connections opened with 100 handshakes in flight and held, from the
  first connect to the last accept; and 1000 SUBSCRIBEs to distinct topics on one
  `rocket-multiplex` socket, 100 unanswered at a time, to the last OK.
- Reconnect storm: 5000 dedicated subscribers on 50 rooms; the server is restarted on its
  port, and once the new one listens the clients reconnect with the JS client's jittered
  backoff (250 ms doubling to 10 s) or all at once, until each has received a message again
  (a publisher per room, every 50 ms). Memory: the new server's RSS 1 s after the recovery ÷
  the old one's before the restart.
- Memory: a fresh server, warmed with 200 connect/close cycles, then 5000 idle connections;
  (RSS held − RSS before) / 5000.
- Multiplex: 10 closed-loop echo streams, as 10 topics of one `rocket-multiplex` socket vs
  10 dedicated sockets, same server and handler; and 10 request/reply streams on `meta`
  topics of one socket (`topic·id=N·payload` → `topic·reply=N·payload`, the handler's return
  value) against that echo.
- Redis: 1000 subscribers on server B, publisher on server A, both `redis://127.0.0.1:6379/0`,
  against wsroute's memory broker in one process and against encode/broadcaster's Redis
  backend set up the same way.

"""


def write_outputs(
    rec: Recorder, cfg: Config, elapsed: float, write_docs: bool, machine_line: str | None = None
) -> str:
    rows, _facts = summarize(rec.records)
    table = render_markdown(rows, rec.records, cfg, elapsed)
    rec.path.with_suffix(".md").write_text(table)
    if write_docs:
        write_doc(table, machine_line or machine())
    return table


def write_doc(table: str, machine_line: str) -> list[str]:
    """docs/benchmarks.md: its head, the charts of the recorded runs (SVGs in
    docs/benchmarks/), bench/notes.md, and `table` (the latest full run's) with its machine.
    Returns the scenarios the recorded runs have no chart for."""
    from charts import write_charts  # matplotlib: only when the page is written

    charts, missing = write_charts(RESULTS, CHARTS, CHARTS.name)
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    notes_path = BENCH / "notes.md"
    notes = notes_path.read_text() if notes_path.exists() else ""
    DOCS.write_text(
        DOC_TITLE
        + charts
        + "\n"
        + DOC_HEAD
        + (notes + "\n" if notes else "")
        + f"## Latest full run\n\nMachine: {machine_line}.\n\n"
        + table
    )
    return missing
