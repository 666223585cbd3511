"""The charts at the top of docs/benchmarks.md, drawn from the runs recorded in bench/results.

Every bar is the median of the per-round ratios of two variants measured back to back in the
same round (`summary.paired`), with the min–max over the rounds as whiskers; the solid line
at 1.0 is the baseline, a dashed line the target of `summary` (a panel of absolute values,
the reconnect storm's seconds, has no baseline; its unit follows each figure). Each chart is
drawn from the latest full run that has its scenario, else from the latest quick (or
focused) run that has it; its caption names the run.

The SVG files are byte-stable: the Agg backend, a fixed ``svg.hashsalt``, no date in the
metadata, text kept as text (``svg.fonttype: none``). `report.write_docs` calls `write_charts`.
"""

# ruff: noqa: RUF001, RUF002  (the multiplication signs and dashes are printed on purpose)

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from summary import DEFAULT_WINDOW, PEER_TARGETS, SUMMARY_SPEC, med, paired, read_run, record_params

SANSIO = "websockets-sansio"


@dataclass
class Run:
    """One recorded run: its stamp, kind (full, focused, quick, smoke) and records (no meta)."""

    stamp: str
    kind: str
    meta: dict[str, Any]
    records: list[dict[str, Any]]

    def has(self, scenario: str) -> bool:
        return any(r.get("scenario") == scenario for r in self.records)


def run_kind(stamp: str, meta: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """``smoke`` and ``quick`` by the stamp's suffix (or the meta record); a run without it is
    ``full`` when it ran the whole suite (no ``only`` in its meta; older runs: echo and
    fan-out both there), else ``focused``.

    >>> run_kind("20261204-212459-quick", {"quick": True}, [])
    'quick'
    >>> run_kind("20261126-135349", {}, [{"scenario": "redis_fanout"}])
    'focused'
    >>> run_kind("20261126-133533", {}, [{"scenario": "echo"}, {"scenario": "fanout"}])
    'full'
    """
    if stamp.endswith("-smoke") or meta.get("smoke"):
        return "smoke"
    if stamp.endswith("-quick") or meta.get("quick"):
        return "quick"
    scenarios = {r.get("scenario") for r in records}
    if meta.get("only") or not {"echo", "fanout"} <= scenarios:
        return "focused"
    return "full"


def load_runs(results: Path) -> list[Run]:
    """Every run in `results`, oldest first (stamps sort by time)."""
    runs = []
    for path in sorted(results.glob("*.jsonl")):
        body, meta = read_run(path)
        runs.append(Run(path.stem, run_kind(path.stem, meta, body), meta, body))
    return runs


def latest_full(runs: list[Run]) -> Run | None:
    return next((r for r in reversed(runs) if r.kind == "full"), None)


def source_for(runs: list[Run], scenario: str) -> Run | None:
    """The run a chart of `scenario` is drawn from: the latest full run when it has the
    scenario, else the latest quick or focused run that has it (never a smoke run)."""
    full = latest_full(runs)
    if full is not None and full.has(scenario):
        return full
    return next((r for r in reversed(runs) if r.kind in ("quick", "focused") and r.has(scenario)), None)


@dataclass
class Bar:
    label: str
    ratios: list[float]
    target: float | None = None
    ours: bool = False  # wsroute's own bar (drawn in the accent colour)


@dataclass
class Panel:
    title: str
    xlabel: str
    bars: list[Bar] = field(default_factory=list)
    unit: str = "×"  # after each bar's figure: ratios, or " s" for a panel of seconds
    baseline: float | None = 1.0  # the solid line (None: a panel of absolute values)


@dataclass
class Chart:
    name: str  # file name without .svg
    title: str
    caption: str
    panels: list[Panel]
    runs: list[str]


def _group(run: Run, scenario: str, params: dict[str, Any], ws: str = SANSIO) -> list[dict[str, Any]]:
    return [
        r
        for r in run.records
        if r.get("scenario") == scenario
        and record_params(r) == params
        and r.get("group_ws", r.get("ws", SANSIO)) == ws
    ]


def _bar(
    recs: list[dict[str, Any]], variant: str, base: str, metric: str, label: str, **kw: Any
) -> Bar | None:
    ratios = paired(recs, variant, base, metric)
    return Bar(label, ratios, **kw) if ratios else None


def _target(scenario: str, variant: str) -> float | None:
    targets = SUMMARY_SPEC[scenario][3]
    return targets[variant][1] if variant in targets else None


def echo_chart(run: Run) -> Chart | None:
    panel = Panel("echo, messages/s ÷ the raw ASGI echo (same rounds)", "ratio to raw (higher is better)")
    sizes = [({"conns": n}, SANSIO, f"{n} conn") for n in (1, 10, 100)] + [
        ({"conns": 10}, "wsproto", "10 conn, wsproto")
    ]
    for params, ws, where in sizes:
        recs = _group(run, "echo", params, ws)
        for variant in ("wsroute", "starlette", "fastapi"):
            bar = _bar(
                recs,
                variant,
                "raw",
                "msg_per_s",
                f"{where} · {variant}",
                target=_target("echo", variant),
                ours=variant == "wsroute",
            )
            if bar:
                panel.bars.append(bar)
    if not panel.bars:
        return None
    return Chart(
        "echo",
        "Echo: wsroute, Starlette and FastAPI against the raw ASGI floor",
        "closed-loop echo of 32-byte texts at 1, 10 and 100 connections; target: wsroute ≥ 0.90× raw",
        [panel],
        [run.stamp],
    )


def fanout_chart(run: Run, subs: int) -> Chart | None:
    recs = _group(run, "fanout", {"subs": subs, "window": DEFAULT_WINDOW})
    base = Panel("fan-out, deliveries/s ÷ the naive loop (same rounds)", "ratio to the naive loop")
    for variant, label in (
        ("wsroute", "wsroute"),
        ("wsroute_fastlane", "wsroute + fastlane"),
        ("raw_loop", "raw ASGI loop"),
        ("broadcaster", "encode/broadcaster"),
        ("litestar", "Litestar channels"),
        ("socketio", "python-socketio"),
    ):
        bar = _bar(
            recs,
            variant,
            "naive",
            "deliveries_per_s",
            label,
            target=_target("fanout", variant),
            ours=variant.startswith("wsroute"),
        )
        if bar:
            base.bars.append(bar)
    peers = Panel("wsroute ÷ each peer (same rounds)", "wsroute's deliveries/s ÷ the peer's")
    for peer, bound in PEER_TARGETS:
        bar = _bar(recs, "wsroute", peer, "deliveries_per_s", f"÷ {peer}", target=bound, ours=True)
        if bar:
            peers.bars.append(bar)
    panels = [p for p in (base, peers) if p.bars]
    if not panels:
        return None
    return Chart(
        f"fanout-{subs}",
        f"Fan-out to {subs:,} subscribers: wsroute against the naive loop and the peers",
        f"one publisher, {subs:,} subscribers of one topic, 64-byte texts, 4 broadcasts in flight; "
        "targets: wsroute ≥ 0.95× the naive loop, ≥ " + ", ≥ ".join(f"{b:g}× {p}" for p, b in PEER_TARGETS),
        panels,
        [run.stamp],
    )


def windows_of(run: Run, subs: int | None = None) -> set[int]:
    """The fan-out windows (broadcasts in flight) the run measured, at `subs` subscribers
    or any; 4 for older records."""
    return {
        record_params(r)["window"]
        for r in run.records
        if r.get("scenario") == "fanout" and subs in (None, record_params(r).get("subs"))
    }


def shallow_source(runs: list[Run], subs: int) -> Run | None:
    """The run a size's panel of the chart by window is drawn from: the latest full run
    when it measured that size at a window other than 4, else the latest quick or focused
    run that did."""
    full = latest_full(runs)
    if full is not None and windows_of(full, subs) - {DEFAULT_WINDOW}:
        return full
    return next(
        (
            r
            for r in reversed(runs)
            if r.kind in ("quick", "focused") and windows_of(r, subs) - {DEFAULT_WINDOW}
        ),
        None,
    )


def fanout_windows_chart(runs: list[Run]) -> Chart | None:
    """wsroute and the fastlane against the naive loop at 1, 2 and 4 broadcasts in flight
    (issue #18): one panel per size, each from its own source run (`shallow_source`), the
    bars of each window together."""
    panels = []
    stamps: list[str] = []
    for subs in (100, 1000, 5000):
        run = shallow_source(runs, subs)
        if run is None:
            continue
        panel = Panel(
            f"{subs:,} subscribers · run {run.stamp}",
            "deliveries/s ÷ the naive loop's at the same window (same rounds)",
        )
        for window in sorted(windows_of(run, subs)):
            recs = _group(run, "fanout", {"subs": subs, "window": window})
            for variant, label in (("wsroute", "wsroute"), ("wsroute_fastlane", "wsroute + fastlane")):
                target = _target("fanout", variant)
                if variant == "wsroute_fastlane" and subs == 100:
                    target = None  # the fastlane's target is for 1000 and 5000
                bar = _bar(
                    recs,
                    variant,
                    "naive",
                    "deliveries_per_s",
                    f"{subs:,} · {window} in flight · {label}",
                    target=target,
                    ours=True,
                )
                if bar:
                    panel.bars.append(bar)
        if panel.bars:
            panels.append(panel)
            if run.stamp not in stamps:
                stamps.append(run.stamp)
    if not panels:
        return None
    return Chart(
        "fanout-windows",
        "Fan-out at 1, 2 and 4 broadcasts in flight: wsroute against the naive loop",
        "one publisher, subscribers of one topic, 64-byte texts, the next broadcast sent when the "
        "oldest of the window reached every subscriber; targets at every window: wsroute ≥ 0.95× "
        "the naive loop, the fastlane ≥ 1.4× at 1000 and 5000",
        panels,
        stamps,
    )


def connect_chart(run: Run) -> Chart | None:
    recs = _group(run, "connect", {"concurrency": 8})
    panel = Panel("handshakes, connections/s ÷ the raw ASGI app (same rounds)", "ratio to raw")
    for variant, label in (("wsroute", "wsroute (guard)"), ("fastapi", "FastAPI (Depends)")):
        target = _target("connect", variant)
        bar = _bar(recs, variant, "raw", "conns_per_s", label, target=target, ours=variant == "wsroute")
        if bar:
            panel.bars.append(bar)
    if not panel.bars:
        return None
    return Chart(
        "handshakes",
        "Handshakes: open → accepted → close, against the raw ASGI app",
        "8 concurrent loops of open → accepted → close (the connection churn); target: wsroute ≥ 0.85× raw",
        [panel],
        [run.stamp],
    )


def first_params(run: Run, scenario: str) -> dict[str, Any]:
    """The params of the run's first record of `scenario` (its size, as that run ran it)."""
    return next((record_params(r) for r in run.records if r.get("scenario") == scenario), {})


def handshake_chart(run: Run) -> Chart | None:
    """The handshake rate (connections held, 100 in flight) and the multiplexed SUBSCRIBEs
    on one socket, each ÷ the raw app's handshakes in the same round."""
    params = first_params(run, "handshake")
    recs = _group(run, "handshake", params)
    panel = Panel(
        "connections (or SUBSCRIBEs) per second ÷ the raw ASGI app's handshakes (same rounds)",
        "ratio to raw (higher is better)",
    )
    for variant, label in (
        ("wsroute", "wsroute (guard)"),
        ("fastapi", "FastAPI (Depends)"),
        ("wsroute_mux_subscribe", "wsroute, SUBSCRIBEs on 1 socket"),
    ):
        target = _target("handshake", variant)
        bar = _bar(
            recs, variant, "raw", "conns_per_s", label, target=target, ours=variant.startswith("wsroute")
        )
        if bar:
            panel.bars.append(bar)
    if not panel.bars:
        return None
    return Chart(
        "handshake-rate",
        "Handshake rate: connections opened and held, against the raw ASGI app",
        f"{params.get('conns', 0):,} connections, {params.get('concurrency', 0)} handshakes in flight, "
        "from the first connect to the last accept; and as many SUBSCRIBEs to distinct topics on one "
        "multiplexed socket (to the last OK); target: wsroute ≥ 0.85× raw, both",
        [panel],
        [run.stamp],
    )


def reconnect_chart(run: Run) -> Chart | None:
    """The reconnect storm after a server restart: the seconds until every client receives
    again, raw and wsroute, per mode (wsroute's dashed mark at 1.2× raw's median), and
    wsroute's time ÷ raw's round by round."""
    params = first_params(run, "reconnect")
    seconds = Panel(
        "seconds from the restarted server listening until every client receives again",
        "seconds (lower is better)",
        unit=" s",
        baseline=None,
    )
    ratios = Panel("wsroute's time ÷ raw's (same rounds)", "ratio to raw (lower is better)")
    for mode in ("backoff", "at_once"):
        recs = _group(run, "reconnect", {**params, "mode": mode})
        times = {
            v: [r["recovered_s"] for r in recs if r["variant"] == v and r.get("recovered_s") is not None]
            for v in ("raw", "wsroute")
        }
        if not times["raw"] or not times["wsroute"]:
            continue
        bound = _target("reconnect", "wsroute")
        seconds.bars.append(Bar(f"{mode} · raw ASGI", times["raw"]))
        mark = bound * med(times["raw"]) if bound else None
        seconds.bars.append(Bar(f"{mode} · wsroute", times["wsroute"], target=mark, ours=True))
        bar = _bar(recs, "wsroute", "raw", "recovered_ms", f"{mode} · wsroute ÷ raw", target=bound, ours=True)
        if bar:
            ratios.bars.append(bar)
    panels = [p for p in (seconds, ratios) if p.bars]
    if not panels:
        return None
    return Chart(
        "reconnect",
        "Reconnect storm: every client receiving again after a server restart",
        f"{params.get('clients', 0):,} clients on {params.get('rooms', 0)} rooms (dedicated sockets), the "
        "server restarted on its port; they reconnect with the JS client's jittered backoff (250 ms "
        "doubling to 10 s) or all at once; target: wsroute ≤ 1.2× raw's time",
        panels,
        [run.stamp],
    )


def history_chart(run: Run) -> Chart | None:
    panel = Panel(f"fan-out with history ÷ without · run {run.stamp}", "ratio to no history")
    for broker in ("memory", "redis_2proc"):
        recs = _group(run, "history_fanout", {"subs": 1000, "broker": broker})
        for variant in ("history", "history_positions"):
            bar = _bar(
                recs,
                variant,
                "no_history",
                "deliveries_per_s",
                f"{broker} · {variant}",
                target=_target("history_fanout", variant),
                ours=True,
            )
            if bar:
                panel.bars.append(bar)
    if not panel.bars:
        return None
    return Chart(
        "history",
        "History: fan-out to a topic with history=100 against the same without",
        "1000 subscribers, memory broker and Redis (2 processes); target: ≥ 0.85× without history",
        [panel],
        [run.stamp],
    )


def presence_chart(fan: Run | None, churn: Run | None) -> Chart | None:
    panels = []
    if fan is not None:
        panel = Panel(
            f"fan-out with presence ÷ without · run {fan.stamp}", "ratio to the same without presence"
        )
        for broker in ("memory", "redis_2proc"):
            recs = _group(fan, "presence_fanout", {"subs": 1000, "broker": broker})
            for variant, base, bound in (
                ("presence", "no_presence", _target("presence_fanout", "presence")),
                ("presence_mux", "mux_meta", 0.95),
            ):
                bar = _bar(
                    recs,
                    variant,
                    base,
                    "deliveries_per_s",
                    f"{broker} · {variant} ÷ {base}",
                    target=bound,
                    ours=True,
                )
                if bar:
                    panel.bars.append(bar)
        if panel.bars:
            panels.append(panel)
    if churn is not None:
        panel = Panel(f"beside 500 joins+leaves/s ÷ alone · run {churn.stamp}", "ratio to the fan-out alone")
        for r in churn.records:
            if r.get("scenario") == "presence_churn":
                params = r["params"]
                break
        else:
            params = {}
        for broker in ("memory", "redis_2proc"):
            recs = _group(churn, "presence_churn", {**params, "broker": broker})
            for variant, base in (("presence+churn", "presence"), ("no_presence+churn", "no_presence")):
                bar = _bar(
                    recs,
                    variant,
                    base,
                    "deliveries_per_s",
                    f"{broker} · {variant} ÷ {base}",
                    target=_target("presence_churn", variant),
                    ours=variant == "presence+churn",
                )
                if bar:
                    panel.bars.append(bar)
        if panel.bars:
            panels.append(panel)
    if not panels:
        return None
    return Chart(
        "presence",
        "Presence: fan-out with members, and under join/leave churn",
        "1000 subscribers, memory broker and Redis (2 processes); targets: ≥ 0.95× without presence, "
        "churn costing ≤ 10% of the fan-out (≥ 0.90×)",
        panels,
        [r.stamp for r in (fan, churn) if r is not None],
    )


def build_charts(runs: list[Run]) -> tuple[list[Chart], list[str]]:
    """The charts the recorded runs allow, and a note for each one they do not."""
    charts: list[Chart | None] = []
    missing: list[str] = []
    for scenario, make in (
        ("echo", echo_chart),
        ("fanout", lambda run: fanout_chart(run, 1000)),
        ("fanout", lambda run: fanout_chart(run, 5000)),
        ("connect", connect_chart),
        ("history_fanout", history_chart),
    ):
        run = source_for(runs, scenario)
        chart = make(run) if run else None
        if chart is None:
            missing.append(scenario)
        charts.append(chart)
    windows = fanout_windows_chart(runs)
    if windows is None:
        missing.append("fanout at 1 and 2 in flight")
    # after the two fan-out charts (echo, fan-out 1000, fan-out 5000)
    charts.insert(3, windows)
    fan, churn = source_for(runs, "presence_fanout"), source_for(runs, "presence_churn")
    charts.append(presence_chart(fan, churn))
    if fan is None and churn is None:
        missing.append("presence")
    for scenario, make in (("handshake", handshake_chart), ("reconnect", reconnect_chart)):
        run = source_for(runs, scenario)
        chart = make(run) if run else None
        if chart is None:
            missing.append(scenario)
        charts.append(chart)
    return [c for c in charts if c is not None], missing


def axis_limit(highs: list[float], targets: list[float]) -> float:
    """The right end of a panel's axis: room past every bar's whisker and every target,
    except for a bar far beyond the rest (python-socketio at 5000 subscribers: one round out
    of five), which is cut at the axis and labelled.

    >>> axis_limit([1.07, 1.3, 0.6], [0.95, 0, 0])
    1.534
    >>> axis_limit([2.33, 2.11, 29.6], [1.6, 1.6, 4.5])
    5.31
    """
    ordered = sorted([*highs, *targets, 1.0])
    top = ordered[-1]
    if len(ordered) > 1 and top > 3 * ordered[-2]:
        top = ordered[-2]
    return round(top * 1.18, 3)


def alt_text(chart: Chart) -> str:
    """What a reader without the image needs: the title, and wsroute's medians."""
    ours = [f"{b.label} {med(b.ratios):.2f}{p.unit}" for p in chart.panels for b in p.bars if b.ours]
    return f"{chart.title}. " + "; ".join(ours)


def draw(chart: Chart, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.hashsalt": "wsroute-bench",  # fixed ids: a re-run writes the same bytes
            "svg.fonttype": "none",
            "font.family": "sans-serif",
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    heights = [len(p.bars) * 0.32 + 0.9 for p in chart.panels]
    fig, axes = plt.subplots(
        len(chart.panels),
        1,
        figsize=(8.0, sum(heights) + 0.8),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    fig.suptitle(chart.title, fontsize=11, x=0.01, ha="left")
    targets = False
    for ax, panel in zip(axes[:, 0], chart.panels, strict=True):
        n = len(panel.bars)
        ys = list(range(n))[::-1]
        meds = [med(b.ratios) for b in panel.bars]
        limit = axis_limit([max(b.ratios) for b in panel.bars], [b.target or 0.0 for b in panel.bars])
        shown = [min(m, limit) for m in meds]
        lows = [max(0.0, s - min(b.ratios)) for s, b in zip(shown, panel.bars, strict=True)]
        highs = [max(0.0, min(max(b.ratios), limit) - s) for s, b in zip(shown, panel.bars, strict=True)]
        colours = ["#00897b" if b.ours else "#9e9e9e" for b in panel.bars]
        ax.barh(ys, shown, height=0.62, color=colours, xerr=[lows, highs], ecolor="#424242", capsize=2.5)
        rounds = max(len(b.ratios) for b in panel.bars)
        ax.set_yticks(
            ys,
            [
                b.label + (f" ({len(b.ratios)} of {rounds} rounds)" if len(b.ratios) < rounds else "")
                for b in panel.bars
            ],
        )
        if panel.baseline is not None:
            ax.axvline(panel.baseline, color="#212121", linewidth=1.0)
        for y, bar in zip(ys, panel.bars, strict=True):
            if bar.target is not None:
                targets = True
                ax.plot([bar.target, bar.target], [y - 0.45, y + 0.45], color="#d84315", linestyle="--")
        ax.set_xlim(0, limit)
        for y, m, bar in zip(ys, meds, panel.bars, strict=True):
            end = min(max(bar.ratios), limit)
            if m > limit:  # off the axis: the figure inside the bar's end
                text = f"{m:.2f}{panel.unit} →"
                ax.text(limit * 0.985, y, text, va="center", ha="right", fontsize=8, color="white")
            else:
                ax.text(
                    end + limit * 0.012,
                    y,
                    f"{m:.2f}{panel.unit}",
                    va="center",
                    fontsize=8,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6},
                )
        ax.set_title(panel.title, fontsize=9, loc="left")
        ax.set_xlabel(panel.xlabel)
        ax.set_ylim(-0.7, n - 0.3)
    handles = [plt.Line2D([], [], color="#212121", linewidth=1.0, label="baseline (1.0×)")]
    if targets:
        handles.append(plt.Line2D([], [], color="#d84315", linestyle="--", label="target"))
    handles.append(plt.Rectangle((0, 0), 1, 1, color="#00897b", label="wsroute"))
    handles.append(plt.Rectangle((0, 0), 1, 1, color="#9e9e9e", label="peers, context"))
    fig.legend(handles=handles, loc="lower center", ncols=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.045 * 4 / (sum(heights) + 0.8), 1, 1))
    if path.suffix == ".svg":
        fig.savefig(path, format="svg", metadata={"Date": None})
    else:  # a look at a chart without a browser: draw(chart, Path("/tmp/x.png"))
        fig.savefig(path, dpi=110)
    plt.close(fig)


def write_charts(results: Path, out: Path, link: str) -> tuple[str, list[str]]:
    """Draw every chart the runs in `results` allow into `out` (stale SVGs there removed)
    and return the markdown section that shows them (images at `link`/<name>.svg) and the
    scenarios without a chart."""
    runs = load_runs(results)
    charts, missing = build_charts(runs)
    out.mkdir(parents=True, exist_ok=True)
    names = {f"{c.name}.svg" for c in charts}
    for old in out.glob("*.svg"):
        if old.name not in names:
            old.unlink()
    lines = [
        "## Charts",
        "",
        "Drawn by `python3 bench/run.py --report-only` from the runs recorded in `bench/results/`. "
        "Each bar is the median of the per-round ratios of two variants measured back to back in "
        "the same round, the whiskers the min–max over the rounds; the solid line at 1.0 is the "
        "baseline, a dashed line the target (the reconnect storm's seconds are times, not ratios). "
        "The runs named under each chart are in the tables below "
        "(the latest full run) or in `bench/results/`.",
        "",
    ]
    for chart in charts:
        draw(chart, out / f"{chart.name}.svg")
        kinds = {r.stamp: r.kind for r in runs}
        source = " and ".join(f"{kinds[s]} run `{s}`" for s in chart.runs)
        lines += [
            f"![{alt_text(chart)}]({link}/{chart.name}.svg)",
            "",
            f"*{chart.title}: {chart.caption}. From the {source}.*",
            "",
        ]
    return "\n".join(lines), missing
