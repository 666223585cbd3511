"""From the recorded runs to the table's rows: per-round ratios, their medians, the verdicts.

Every figure is a ratio of two variants measured back to back in the same round, so slow
drifts of a shared machine cancel out. `SUMMARY_SPEC` holds each scenario's metric, baseline
and targets.
"""

# ruff: noqa: RUF001, RUF002  (the multiplication signs and dashes in the strings are printed on purpose)

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLEAN = 0.10
"""A run is "clean" when no process kept our server or client off its CPU for more than
this share of the measured window (from /proc/*/schedstat run-queue wait), and the
hypervisor did not either (/proc/stat's steal of their two CPUs)."""


DEFAULT_WINDOW = 4
"""Broadcasts in flight in the fan-out scenario when its params do not say: every record
made before the window became a parameter (issue #18) ran with 4."""

SHALLOW_VARIANTS = ("naive", "wsroute", "wsroute_fastlane")
"""The fan-out variants run at a window other than 4: the baseline and the targets'."""


def read_run(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A recorded run's ``.jsonl``: its records without the meta record, and the meta record."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    meta = next((r for r in records if r.get("scenario") == "meta"), {})
    return [r for r in records if r.get("scenario") != "meta"], meta


def record_params(record: dict[str, Any]) -> dict[str, Any]:
    """A record's params, a fan-out's with its window (4 for the records that have none).

    >>> record_params({"scenario": "fanout", "params": {"subs": 1000}})
    {'subs': 1000, 'window': 4}
    >>> record_params({"scenario": "fanout", "params": {"subs": 1000, "window": 1}})
    {'subs': 1000, 'window': 1}
    >>> record_params({"scenario": "history_fanout", "params": {"subs": 1000, "broker": "memory"}})
    {'subs': 1000, 'broker': 'memory'}
    """
    params = dict(record.get("params") or {})
    if record.get("scenario") == "fanout" and "window" not in params:
        params["window"] = DEFAULT_WINDOW
    return params


def _get(record: dict[str, Any], metric: str) -> float | None:
    value: Any = record
    for part in metric.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value)


def cpu_per_op(record: dict[str, Any]) -> float | None:
    """Server CPU µs per message (echo) or per delivery (fan-out), all server processes."""
    ops = record.get("msgs") or record.get("deliveries") or record.get("conns")
    if not ops or "server_cpu_s" not in record:
        return None
    return float(sum(record["server_cpu_s"])) / ops * 1e6


def paired(
    records: list[dict[str, Any]],
    variant: str,
    base: str,
    metric: str,
    *,
    clean: bool = False,
    inverse: bool = False,
) -> list[float]:
    """Per-round ratios variant/base (the two ran back to back in the same round).

    `clean` keeps only rounds where neither run was disturbed; `inverse` gives base/variant
    (for costs, so that > 1 still means "variant better").
    """
    by_rep: dict[int, dict[str, float]] = {}
    for r in records:
        v = cpu_per_op(r) if metric == "cpu_per_op" else _get(r, metric)
        if r.get("error") is not None or v is None:
            continue
        if clean and r.get("contention", 0.0) > CLEAN:
            continue
        by_rep.setdefault(r["rep"], {})[r["variant"]] = v
    out = []
    for d in by_rep.values():
        if variant in d and base in d and d[base] and d[variant]:
            out.append(d[base] / d[variant] if inverse else d[variant] / d[base])
    return out


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Row:
    scenario: str
    params: str
    variant: str
    value: str
    ratio: str
    clean: str
    cpu_ratio: str
    target: str
    verdict: str
    cpu: str
    extra: str


def fmt_ratio(ratios: list[float], n: bool = False) -> str:
    if not ratios:
        return "n/a"
    text = f"{med(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"
    return f"{text} n={len(ratios)}" if n else text


# scenario: (metric, unit, baseline, {variant: (target text, bound, ratio must be >= bound)})
SUMMARY_SPEC: dict[str, tuple[str, str, str, dict[str, tuple[str, float, bool]]]] = {
    "echo": ("msg_per_s", "msg/s", "raw", {"wsroute": ("≥ 0.90× raw", 0.90, True)}),
    "fanout": (
        "deliveries_per_s",
        "deliveries/s",
        "naive",
        {
            "wsroute": ("≥ 0.95× naive", 0.95, True),
            "wsroute_fastlane": ("≥ 1.4× naive", 1.4, True),
        },
    ),
    # open → accepted → close, 8 loops (the connection churn)
    "connect": ("conns_per_s", "conn/s", "raw", {"wsroute": ("≥ 0.85× raw", 0.85, True)}),
    # 1000 handshakes, 100 in flight, held; or 1000 SUBSCRIBEs on one multiplexed socket
    "handshake": (
        "conns_per_s",
        "conn/s",
        "raw",
        {
            "wsroute": ("≥ 0.85× raw", 0.85, True),
            "wsroute_mux_subscribe": ("≥ 0.85× raw", 0.85, True),
        },
    ),
    "multiplex": (
        "msg_per_s",
        "msg/s",
        "10_sockets",
        {"1_socket_10_topics": ("≥ 0.91× (cost ≤ 1.1×)", 1 / 1.1, True)},
    ),
    "memory": ("bytes_per_conn", "KiB/conn", "raw", {"wsroute": ("≤ 1.1× raw", 1.1, False)}),
    "redis_fanout": (
        "deliveries_per_s",
        "deliveries/s",
        "wsroute_memory",
        {"wsroute_redis_2proc": ("≥ 0.60× memory", 0.60, True)},
    ),
    # issue 16: history costs the publish path only
    "history_fanout": (
        "deliveries_per_s",
        "deliveries/s",
        "no_history",
        {"history": ("≥ 0.85× no history", 0.85, True)},
    ),
    # a time: the ratio is the variant's time over the baseline's (> 1: slower); the
    # recovery's target is correctness (every client recovered, exactly `missed` each)
    "history_storm": ("storm_ms", "ms, all clients done", "subscribe", {}),
    # the reconnect storm after a server restart: a time (lower is better), from "up"
    # until every client receives again; the memory after it is a row of its own
    "reconnect": ("recovered_ms", "ms, all receiving again", "raw", {"wsroute": ("≤ 1.2× raw", 1.2, False)}),
    # presence: members on the topic, against none (same fan-out, same round)
    "presence_fanout": (
        "deliveries_per_s",
        "deliveries/s",
        "no_presence",
        {"presence": ("≥ 0.95× no presence", 0.95, True)},
    ),
    # 500 joins + leaves per second beside the fan-out, against the fan-out alone
    "presence_churn": (
        "deliveries_per_s",
        "deliveries/s",
        "presence",
        {"presence+churn": ("≥ 0.90× no churn", 0.90, True)},
    ),
    # other ASGI servers (`servers` scenario): wsroute against the floor on the same server,
    # hypercorn or granian (in the params); uvicorn's bounds shown for information only
    "servers_echo": ("msg_per_s", "msg/s", "raw", {"wsroute": ("(≥ 0.90× raw, info)", 0.90, True)}),
    "servers_fanout": (
        "deliveries_per_s",
        "deliveries/s",
        "naive",
        {"wsroute": ("(≥ 0.95× naive, info)", 0.95, True)},
    ),
}

INFORMATIONAL = ("servers_echo", "servers_fanout")
"""Scenarios whose targets are context, not theirs: the verdict is shown in parentheses."""


# fan-out: wsroute's margin over each peer (issue 8), at 1000 and 5000 subscribers
PEER_TARGETS: tuple[tuple[str, float], ...] = (("litestar", 1.6), ("broadcaster", 1.6), ("socketio", 4.5))


def target_applies(scenario: str, variant: str, params: dict[str, Any]) -> bool:
    """Whether `SUMMARY_SPEC`'s target of `variant` holds at these params: the fastlane's
    (≥ 1.4× the naive loop) is for 1000 and 5000 subscribers, at every window; the others
    everywhere.

    >>> target_applies("fanout", "wsroute_fastlane", {"subs": 100, "window": 4})
    False
    >>> target_applies("fanout", "wsroute_fastlane", {"subs": 5000, "window": 1})
    True
    """
    if scenario == "fanout" and variant == "wsroute_fastlane":
        return params.get("subs") in (1000, 5000)
    return True


def fanout_like(scenario: str) -> bool:
    """Scenarios whose records are fan-out results (deliveries, latency, lost)."""
    return "fanout" in scenario or scenario == "presence_churn"


def churn_note(mine: list[dict[str, Any]]) -> list[str]:
    """What the churner of `presence_churn` did inside the windows (medians over rounds)."""
    churns = [r["churn"] for r in mine if isinstance(r.get("churn"), dict)]
    if not churns:
        return []

    def median(key: str) -> float:
        return med([c.get(key, 0.0) for c in churns])

    join_p50 = med([c["join_us"]["p50"] for c in churns]) / 1000
    join_p99 = med([c["join_us"]["p99"] for c in churns]) / 1000
    return [
        f"churn {median('events_per_s'):,.0f} joins+leaves/s completed, {median('issued_per_s'):,.0f}/s sent "
        f"(asked {churns[0]['rate_asked']:g}), join→OK p50 {join_p50:.1f} ms p99 {join_p99:.1f} ms, "
        f"skipped {sum(c['skipped'] for c in churns)}, errors {sum(c['errors'] for c in churns)}, "
        f"churners got {median('deliveries'):,.0f} deliveries and {median('presence_frames'):,.0f} "
        "presence frames per window"
    ]


def with_churners(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with ``deliveries_all_per_s``: its fan-out's deliveries per second plus those
    its churner's sockets got while subscribed to the same topic (none without a churner)."""
    rate = record.get("deliveries_per_s")
    if rate is None:
        return record
    churn = record.get("churn")
    if isinstance(churn, dict) and churn.get("window_s"):
        rate += churn["deliveries"] / churn["window_s"]
    return {**record, "deliveries_all_per_s": rate}


def verdict_of(all_r: list[float], clean_r: list[float], bound: float, at_least: bool) -> str:
    """PASS/FAIL on the clean rounds when there are at least 3 of them, else on all rounds."""
    use, note = (clean_r, "") if len(clean_r) >= 3 else (all_r, " (noisy)")
    if not use:
        return "n/a"
    m = med(use)
    return ("PASS" if (m >= bound if at_least else m <= bound) else "FAIL") + note


def compare(
    rows: list[Row],
    recs: list[dict[str, Any]],
    scenario: str,
    label: str,
    metric: str,
    pair: tuple[str, str],
    bound: float | None,
    name: str | None = None,
    target_of: str | None = None,
) -> dict[str, Any] | None:
    """Add the row comparing variant ``pair[0]`` with ``pair[1]`` (round by round, same run)
    and return its facts; None when the run has no such pair. Without `bound`, no verdict."""
    variant, other = pair
    all_r = paired(recs, variant, other, metric)
    if not all_r:
        return None
    clean_r = paired(recs, variant, other, metric, clean=True)
    cpu_r = paired(recs, variant, other, "cpu_per_op", inverse=True)
    rows.append(
        Row(
            scenario,
            label,
            name or f"{variant} vs {other}",
            "",
            fmt_ratio(all_r),
            fmt_ratio(clean_r, n=True),
            fmt_ratio(cpu_r),
            "" if bound is None else f"≥ {bound:g}× {target_of or other}",
            "" if bound is None else verdict_of(all_r, clean_r, bound, True),
            "",
            "",
        )
    )
    return {"all": med(all_r), "clean": med(clean_r), "clean_n": len(clean_r), "cpu": med(cpu_r)}


def storm_check(
    name: str, mine: list[dict[str, Any]], errors: list[dict[str, Any]], extra: list[str]
) -> tuple[str, str]:
    """The reconnect storm's counts (every round's): recovered, replayed exactly, frames the
    client did not expect; for ``recover`` the target (all recovered, exactly `missed` each)."""
    clients = sum(r["clients"] for r in mine)
    exact = sum(r["exact"] for r in mine)
    bad = sum(r["bad"] for r in mine)
    missed = mine[0]["missed"]
    if name == "recover":
        recovered = sum(r["recovered"] for r in mine)
        extra.append(f"recovered {recovered}/{clients}, exactly {missed} replayed: {exact}/{clients}")
    elif name == "live":
        extra.append(f"all {missed} delivered live: {exact}/{clients}")
    else:
        extra.append(f"subscribed at the head, nothing replayed: {exact}/{clients}")
    extra.append(f"unexpected frames {bad}")
    extra.append(f"{sum(r['replayed_total'] for r in mine) / sum(r['storm_s'] for r in mine):,.0f} frames/s")
    if name != "recover":
        return "", ""
    ok = not errors and recovered == clients == exact and bad == 0 and not any(r["timed_out"] for r in mine)
    return f"all recovered, exactly {missed} each", "PASS" if ok else "FAIL"


RECONNECT_RSS_BOUND = 1.05
"""The reconnect storm's memory target: the new server's RSS once every client receives
again, at most this times the old server's before the restart (issue: "within 5%")."""


def reconnect_note(mine: list[dict[str, Any]]) -> list[str]:
    """The reconnect storm's figures besides its time (medians over the rounds, counts summed)."""
    accepted = [r["accepted_s"] for r in mine if r.get("accepted_s") is not None]
    per_s = [r["clients_per_s"] for r in mine if r.get("clients_per_s")]
    out = [
        f"all accepted in {med(accepted) * 1000:,.0f} ms" if accepted else "not all accepted",
        f"{med(per_s):,.0f} clients/s" if per_s else "no full recovery",
        f"attempts {sum(r['attempts'] for r in mine)}, failed {sum(r['failures'] for r in mine)}, "
        f"gave up {sum(r['gave_up'] for r in mine)}",
        f"never received {sum(r['never_received'] for r in mine)}",
    ]
    if sum(r.get("publisher_failures", 0) for r in mine):
        out.append(f"publisher attempts failed {sum(r['publisher_failures'] for r in mine)}")
    return out


def reconnect_memory_rows(recs: list[dict[str, Any]], scenario: str, label: str) -> list[Row]:
    """A row per variant of the reconnect storm: the new server's RSS after the recovery ÷
    the old one's before the restart, each round; wsroute's target ≤ `RECONNECT_RSS_BOUND`."""
    rows = []
    for name in dict.fromkeys(r["variant"] for r in recs):
        mine = [r for r in recs if r["variant"] == name and r.get("error") is None and "rss_ratio" in r]
        if not mine:
            continue
        ratios = [r["rss_ratio"] for r in mine]
        before = med([r["rss_before"] for r in mine]) / 2**20
        after = med([r["rss_after"] for r in mine]) / 2**20
        ours = name == "wsroute"
        rows.append(
            Row(
                scenario,
                label,
                f"{name}: RSS after ÷ before",
                f"{after:,.1f} MiB after, {before:,.1f} before",
                fmt_ratio(ratios, n=True),
                "",
                "",
                f"≤ {RECONNECT_RSS_BOUND:g}× before" if ours else "",
                verdict_of(ratios, ratios, RECONNECT_RSS_BOUND, False) if ours else "",
                "",
                "the new server once every client receives again (+1 s) ÷ the old one before the restart",
            )
        )
    return rows


def summarize(records: list[dict[str, Any]]) -> tuple[list[Row], dict[str, Any]]:
    rows: list[Row] = []
    facts: dict[str, Any] = {}
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("scenario") not in SUMMARY_SPEC:
            continue
        key = (
            r["scenario"],
            json.dumps(record_params(r), sort_keys=True),
            r.get("group_ws", r.get("ws", "")),
        )
        groups.setdefault(key, []).append(r)

    for (scenario, params, ws), recs in groups.items():
        metric, unit, base, targets = SUMMARY_SPEC[scenario]
        label = params.replace('"', "").strip("{}")
        if ws and ws != "websockets-sansio":
            label += f", {ws}"
        throughput = scenario != "memory"
        for name in dict.fromkeys(r["variant"] for r in recs):
            mine = [r for r in recs if r["variant"] == name and r.get("error") is None]
            errors = [r for r in recs if r["variant"] == name and r.get("error")]
            values = [v for v in (_get(r, metric) for r in mine) if v is not None]
            if unit == "KiB/conn":
                value = f"{med(values) / 1024:,.1f} {unit}"
            else:
                value = f"{med(values):,.0f} {unit}"
            if errors:
                value += f" ({len(errors)} failed)"
            all_r = paired(recs, name, base, metric) if name != base else []
            clean_r = paired(recs, name, base, metric, clean=True) if name != base and throughput else []
            cpu_r = (
                paired(recs, name, base, "cpu_per_op", inverse=True) if name != base and throughput else []
            )
            target, verdict = "", ""
            if name in targets and target_applies(scenario, name, json.loads(params)):
                target, bound, at_least = targets[name]
                verdict = verdict_of(all_r, clean_r, bound, at_least)
                if scenario in INFORMATIONAL:
                    verdict = f"({verdict})"
                facts[f"{scenario}[{label}].{name}"] = {
                    "all": med(all_r),
                    "clean": med(clean_r),
                    "clean_n": len(clean_r),
                    "cpu": med(cpu_r),
                }
            extra = []
            if scenario in ("echo", "multiplex", "servers_echo") and mine:
                p50 = med([r["rtt_us"]["p50"] for r in mine])
                p99 = med([r["rtt_us"]["p99"] for r in mine])
                extra.append(f"RTT p50 {p50:.0f} µs, p99 {p99:.0f} µs")
            if fanout_like(scenario) and mine:
                extra.append(f"p99 {med([r['latency_us']['p99'] for r in mine]) / 1000:.1f} ms")
                extra.append(f"lost {sum(r['lost'] for r in mine)}")
                if name != base:
                    lat = paired(recs, name, base, "latency_us.p99")
                    if lat:
                        extra.append(f"p99 latency {med(lat):.2f}× {base}")
            if throughput and mine:
                per = [v for v in (cpu_per_op(r) for r in mine) if v is not None]
                if per:
                    what = (
                        "conn"
                        if scenario in ("connect", "handshake")
                        else "client"
                        if scenario in ("history_storm", "reconnect")
                        else ("delivery" if fanout_like(scenario) else "msg")
                    )
                    if scenario == "connect":
                        per = [sum(r["server_cpu_s"]) / r["conns"] * 1e6 for r in mine if r.get("conns")]
                    extra.append(f"server {med(per):.1f} µs CPU/{what}")
            if scenario == "presence_churn" and mine:
                extra += churn_note(mine)
            if scenario in ("presence_fanout", "presence_churn") and mine:
                frames = med([r.get("presence_frames", 0) for r in mine])
                if frames:
                    extra.append(f"subscribers got {frames:,.0f} presence frames per run")
            if scenario == "connect" and mine:
                extra.append(f"handshake p50 {med([r['handshake_us']['p50'] for r in mine]) / 1000:.2f} ms")
            if scenario == "history_storm" and mine:
                target, verdict = storm_check(name, mine, errors, extra)
            if scenario == "handshake" and mine:
                lat = [r["handshake_us"] for r in mine]
                what = "SUBSCRIBE → OK" if mine[0].get("mode") == "mux" else "handshake"
                extra.append(
                    f"{what} p50 {med([x['p50'] for x in lat]) / 1000:.1f} ms, "
                    f"p99 {med([x['p99'] for x in lat]) / 1000:.1f} ms"
                )
                extra.append(f"failed {sum(r['failed'] for r in mine)}")
            if scenario == "reconnect" and mine:
                extra += reconnect_note(mine)
            cpu = ""
            if mine and "server_cpu_util" in mine[0]:
                srv = "+".join(
                    f"{med([r['server_cpu_util'][i] for r in mine]):.0%}"
                    for i in range(len(mine[0]["server_cpu_util"]))
                )
                stolen = med([r.get("contention", 0.0) for r in mine])
                cpu = f"{srv} / {med([r['client_cpu_util'] for r in mine]):.0%} / {stolen:.0%}"
            rows.append(
                Row(
                    scenario,
                    label,
                    name,
                    value,
                    "baseline" if name == base else fmt_ratio(all_r),
                    "" if name == base or not throughput else fmt_ratio(clean_r, n=True),
                    "" if name == base or not throughput else fmt_ratio(cpu_r),
                    target,
                    verdict,
                    cpu,
                    "; ".join(extra),
                )
            )
        if scenario == "fanout":
            # The peer margins are for 1000 and 5000 subscribers, 4 broadcasts in
            # flight (the peers run at that window only); at 100, context only.
            peer_target = json.loads(params).get("subs") in (1000, 5000)
            for peer, bound in PEER_TARGETS:
                pair = ("wsroute", peer)
                fact = compare(rows, recs, scenario, label, metric, pair, bound if peer_target else None)
                if fact:
                    facts[f"fanout[{label}].wsroute_vs_{peer}"] = fact
        if scenario == "multiplex":
            # Request/reply against the echo on the same socket shape (issue: "request/reply
            # round trips >= 0.9 times the echo scenario's rate").
            pair = ("1_socket_10_topics_request", "1_socket_10_topics")
            name = "request vs echo (1 socket, 10 topics)"
            fact = compare(rows, recs, scenario, label, metric, pair, 0.90, name, "echo")
            if fact:
                facts[f"multiplex[{label}].request_vs_echo"] = fact
        if scenario == "history_storm":
            # recovering the missed publications against receiving the same ones live (a time)
            compare(rows, recs, scenario, label, metric, ("recover", "live"), None, "recover vs live (time)")
        if scenario == "presence_fanout":
            # multiplexed subscribers asking `presence` against the same asking `meta` only
            pair = ("presence_mux", "mux_meta")
            fact = compare(rows, recs, scenario, label, metric, pair, 0.95, target_of="mux meta, no presence")
            if fact:
                facts[f"presence_fanout[{label}].presence_mux_vs_mux_meta"] = fact
        if scenario == "presence_churn":
            # context: the same churn without presence, with watching subscribers, and
            # the churn's presence share (presence+churn against no_presence+churn)
            for pair in (
                ("no_presence+churn", "no_presence"),
                ("presence_watchers+churn", "presence_watchers"),
                ("presence+churn_watching", "presence"),
                ("presence+churn", "no_presence+churn"),
                ("presence_watchers", "presence"),
                ("presence+churn_elsewhere", "presence"),
                ("presence+churn", "presence+churn_elsewhere"),
                ("presence+churn_frames", "presence"),
                ("presence+churn", "presence+churn_frames"),
                ("raw+churn_frames", "raw"),
            ):
                fact = compare(rows, recs, scenario, label, metric, pair, None)
                if fact:
                    facts[f"presence_churn[{label}].{pair[0]}_vs_{pair[1]}"] = fact
            # The churners are subscribers of the fan-out's topic while in, and the server
            # delivers to them too: counted with the fan-out's own deliveries.
            everyone = [with_churners(r) for r in recs]
            pair = ("presence+churn", "presence")
            fact = compare(
                rows,
                everyone,
                scenario,
                label,
                "deliveries_all_per_s",
                pair,
                0.90,
                "presence+churn vs presence, the churners' deliveries counted",
            )
            if fact:
                facts[f"presence_churn[{label}].with_churners"] = fact
        if scenario == "handshake":
            # SUBSCRIBEs on one socket against as many dedicated handshakes, same guard
            pair = ("wsroute_mux_subscribe", "wsroute")
            compare(rows, recs, scenario, label, metric, pair, None, "mux SUBSCRIBE vs dedicated (wsroute)")
            # wsroute against the floor with a FastAPI app's heap for the collector to walk:
            # the gap left once the framework's heap is on both sides.
            compare(rows, recs, scenario, label, metric, ("wsroute", "raw_fastapi_heap"), None)
        if scenario == "reconnect":
            rows += reconnect_memory_rows(recs, scenario, label)
        if scenario == "redis_fanout":
            pair = ("wsroute_redis_2proc", "broadcaster_redis_2proc")
            fact = compare(rows, recs, scenario, label, metric, pair, 1.5, target_of="broadcaster redis")
            if fact:
                facts[f"redis_fanout[{label}].wsroute_vs_broadcaster"] = fact
    return rows, facts
