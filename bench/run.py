"""wsroute benchmark runner: starts the servers, drives the load client, prints ratios.

    python bench/run.py --setup      # create bench/.venv (requirements.txt + wsroute[redis])
    python bench/run.py --quick      # about two minutes: the targets, fewer repeats
    python bench/run.py              # the full suite; writes bench/results/* and docs/benchmarks.md
    python bench/run.py --profile    # py-spy profiles of the wsroute hot paths -> bench/profiles/
    python bench/run.py --smoke      # every scenario and variant once, smallest sizes: checks the runner
    python bench/run.py --report-only  # docs/benchmarks.md and its charts again from bench/results/

Every result is a ratio against a baseline measured in the same run: the variants of a
scenario are run interleaved (A, B, A, B, … with the order reversed every other round) and
repeated; the table shows the median of the per-round ratios and their spread (min–max).
Servers are uvicorn (one worker, uvloop, httptools, ``--ws websockets-sansio`` unless
stated) on 127.0.0.1, pinned to CPU 0; the load client (picows on uvloop) runs in its own
process pinned to CPU 1. The CPU seconds both used inside each measured window are
recorded, so a reader can see which side was saturated.
"""

# ruff: noqa: RUF002  (the dashes in the docstring are meant: --help prints it)

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import scenarios
from config import BENCH, DOCS, RESULTS, ROOT, VENV, VENV_PY, Config, log
from profiling import profile
from progress import Progress, Unit, planned_seconds, unit_label
from report import CHARTS, Recorder, machine, render_markdown, write_doc, write_outputs
from scenarios import SCENARIOS
from servers import ClientError, Servers, ServerSpec
from summary import read_run, summarize


def setup() -> None:
    """Create bench/.venv from bench/requirements.txt plus an editable wsroute[redis]."""
    if not VENV_PY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV_PY), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", str(BENCH / "requirements.txt"), "-e", f"{ROOT}[redis]"], check=True)
    print(f"bench venv ready: {VENV_PY}")


def ensure_venv_python() -> None:
    """Re-run this script with the bench venv's Python (it has psutil, picows, the peers)."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not VENV_PY.exists():
        sys.exit("bench/.venv is missing: run `python bench/run.py --setup` first")
    os.execv(str(VENV_PY), [str(VENV_PY), *sys.argv])


# The in-process benchmarks: one unit each, its planned seconds (quick or smoke, full).
IN_PROCESS = {"micro": (15.0, 45.0), "history_memory": (5.0, 12.0), "presence_memory": (12.0, 15.0)}


class _PlanServer:
    """Stands for a server in the dry run of `plan_units`: it starts nothing."""

    url = "ws://plan.invalid"

    def __init__(self, *_args: object) -> None:
        pass

    def stop(self) -> None:
        pass


class _PlanServers:
    def stop_all(self) -> None:
        pass


def plan_units(cfg: Config) -> list[Unit]:
    """The units of this run, in order, from a dry run of the scenarios: `run_rounds` is
    replaced by one that lists the rounds it would run, the memory scenario's servers and
    client by stand-ins that fail at once (each failure is a recorded unit), logging and the
    Redis clean-up by nothing. The in-process benchmarks are not run: one unit each."""
    found: list[tuple[str, dict[str, Any] | None, str, int, str, float, bool]] = []

    def rounds(
        _rec: object,
        cfg: Config,
        _servers: object,
        scenario: str,
        params: dict[str, Any],
        variants: list[scenarios.Variant],
        client_spec: dict[str, Any],
        reps: int,
        _timeout: float,
    ) -> None:
        variants = scenarios.keep(cfg, variants)
        for rep in range(reps):
            for v in scenarios.interleave(variants, rep):
                seconds = planned_seconds({**client_spec, **v.client})
                ws = variants[0].server.ws
                found.append(
                    (scenario, params, v.name, rep, "" if ws == "websockets-sansio" else ws, seconds, True)
                )

    class PlanRecorder:
        def add(self, r: dict[str, Any]) -> None:
            seconds = 6.0 * r.get("params", {}).get("conns", 5000) / 5000 + 1.0
            found.append(
                (r["scenario"], r.get("params"), r.get("variant", ""), r.get("rep", 0), "", seconds, False)
            )

    def no_client(*_args: object, **_kwargs: object) -> dict[str, Any]:
        raise ClientError("planning")

    patches = [
        mock.patch.object(scenarios, name, value)
        for name, value in (
            ("run_rounds", rounds),
            ("Server", _PlanServer),
            ("run_client", no_client),
            ("run_churned", no_client),
            ("drop_keys", lambda *_a: None),
            ("log", lambda *_a: None),
        )
    ]
    for p in patches:
        p.start()
    try:
        for name, fn in SCENARIOS.items():
            if cfg.only and name not in cfg.only:
                continue
            if name in IN_PROCESS:
                quick, full = IN_PROCESS[name]
                seconds = quick if cfg.quick or cfg.smoke else full
                found.append((name, None, "", 0, "", seconds, False))
                continue
            before = len(found)
            try:
                fn(PlanRecorder(), cfg, _PlanServers())  # type: ignore[arg-type]
            except Exception:  # a scenario the dry run cannot follow: one unit, a guess
                del found[before:]
                found.append((name, None, "", 0, "", 30.0, False))
    finally:
        for p in reversed(patches):
            p.stop()
    reps: dict[tuple[str, str], int] = {}
    for scenario, params, _v, rep, ws, _s, _h in found:
        key = (scenario, f"{params}{ws}")
        reps[key] = max(reps.get(key, 0), rep + 1)
    units = []
    for scenario, params, variant, rep, ws, seconds, hooked in found:
        group = unit_label(scenario, params, None, 0, 1, ws)
        label = unit_label(scenario, params, variant or None, rep, reps[(scenario, f"{params}{ws}")], ws)
        units.append(Unit(scenario, label, group, seconds, hooked))
    return units


class TrackedServers:
    """The run's `Servers`, telling `Progress` when a unit of `run_rounds` starts: each asks
    for its (first) server before anything else."""

    def __init__(self, inner: Servers, progress: Progress) -> None:
        self.inner = inner
        self.progress = progress

    def get(self, spec: ServerSpec, index: int = 0) -> Any:
        if index == 0:
            self.progress.unit_start()
        return self.inner.get(spec, index)

    def stop_all(self) -> None:
        self.inner.stop_all()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def load_run(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any], Config, float]:
    """A recorded run: its records (without the meta record), the meta record, the settings
    it ran with and its length in seconds."""
    body, meta = read_run(path)
    cfg = Config(
        quick=bool(meta.get("quick")),
        smoke=bool(meta.get("smoke")),
        reps=int(meta.get("reps", 0)),
        duration=float(meta.get("duration", 0)),
        ws_impls=[],
        only=None,
        out=RESULTS,
        stamp=path.stem,
        experiments=False,
    )
    elapsed = body[-1]["time"] - meta["time"] if body and "time" in meta else 0.0
    cfg.reps = cfg.reps or max((r.get("rep", 0) for r in body), default=0) + 1
    return body, meta, cfg, elapsed


def report_only() -> None:
    """docs/benchmarks.md and its charts (docs/benchmarks/*.svg) again from the recorded runs:
    the table of the latest full run, each chart from its source run; nothing is measured and
    the runs' own files are left as they are."""
    from charts import latest_full, load_runs

    full = latest_full(load_runs(RESULTS))
    if full is None:
        sys.exit(f"no full run in {RESULTS.relative_to(ROOT)}: nothing to report")
    body, meta, cfg, elapsed = load_run(RESULTS / f"{full.stamp}.jsonl")
    rows, _ = summarize(body)
    missing = write_doc(render_markdown(rows, body, cfg, elapsed), meta.get("machine") or "not recorded")
    log(f"{DOCS.relative_to(ROOT)}: table of run {full.stamp}; charts in {CHARTS.relative_to(ROOT)}/")
    for scenario in missing:
        log(f"  no chart for {scenario}: no recorded run has it")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--setup", action="store_true", help="create bench/.venv and exit")
    parser.add_argument(
        "--quick", action="store_true", help="the targets only, fewer and shorter rounds (~2 min)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="every scenario and variant once, at its smallest size: checks the runner, measures nothing",
    )
    parser.add_argument("--only", help=f"comma-separated scenarios: {','.join(SCENARIOS)}")
    parser.add_argument("--reps", type=int, help="interleaved rounds per point (quick 3, full 5)")
    parser.add_argument("--duration", type=float, help="measured seconds per run (quick 1, full 2)")
    parser.add_argument(
        "--wsproto", action="store_true", help="also run echo on wsproto (default in full runs)"
    )
    parser.add_argument("--no-wsproto", action="store_true", help="full run without the wsproto echo rows")
    parser.add_argument(
        "--experiments",
        action="store_true",
        help="also run the calibration and bench-only experiment rows (default in full runs)",
    )
    parser.add_argument(
        "--variants", help="comma-separated variant names to keep (baselines are always kept)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy profiles into bench/profiles/ and exit"
    )
    parser.add_argument("--summarize", metavar="JSONL", help="print the table of an earlier run and exit")
    parser.add_argument(
        "--write-docs", action="store_true", help="with --summarize: rewrite docs/benchmarks.md"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite docs/benchmarks.md and its charts from bench/results (latest full run) and exit",
    )
    args = parser.parse_args()
    if args.setup:
        setup()
        return
    ensure_venv_python()
    if args.report_only:
        report_only()
        return
    if args.summarize:
        path = Path(args.summarize)
        body, meta, cfg, elapsed = load_run(path)
        if args.write_docs:
            rec = Recorder(path)
            rec.records = body
            print(write_outputs(rec, cfg, elapsed, write_docs=True, machine_line=meta.get("machine")))
        else:
            rows, _ = summarize(body)
            print(render_markdown(rows, [meta, *body], cfg, elapsed))
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 12000:
        log(f"warning: the fd limit is {hard}; 5000 connections need about 10000 (client + server)")
    if os.cpu_count() and os.cpu_count() < 2:  # type: ignore[operator]
        sys.exit("needs 2 CPUs: the server and the client are pinned to different cores")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    quick = args.quick
    suffix = "-quick" if quick else "-smoke" if args.smoke else ""
    out = RESULTS / f"{stamp}{suffix}"
    out.mkdir(parents=True, exist_ok=True)
    ws_impls = ["websockets-sansio"] + (
        ["wsproto"] if (args.wsproto or not (quick or args.no_wsproto)) else []
    )
    cfg = Config(
        quick=quick,
        reps=args.reps or (3 if quick else 1 if args.smoke else 5),
        duration=args.duration or (1.0 if quick else 0.3 if args.smoke else 2.0),
        ws_impls=ws_impls,
        only=set(args.only.split(",")) if args.only else None,
        out=out,
        experiments=args.experiments or not quick,
        variants=set(args.variants.split(",")) if args.variants else None,
        stamp=stamp,
        smoke=args.smoke,
    )
    if args.profile:
        try:
            profile(cfg)
        finally:
            tidy_logs(out)
        return
    rec = Recorder(RESULTS / f"{stamp}{suffix}.jsonl")
    meta: dict[str, object] = {"scenario": "meta", "quick": quick, "reps": cfg.reps, "duration": cfg.duration}
    if cfg.smoke:
        meta["smoke"] = True
    if cfg.only:
        meta["only"] = sorted(cfg.only)  # a focused run: never the docs' "latest full run"
    rec.add({**meta, "machine": machine()})
    servers = Servers(out)
    progress = Progress(plan_units(cfg))
    rec.listeners.append(progress.unit_done)
    tracked = TrackedServers(servers, progress)
    t0 = time.monotonic()
    try:
        for name, fn in SCENARIOS.items():
            if cfg.only and name not in cfg.only:
                continue
            log(f"== {name}")
            t = time.monotonic()
            progress.scenario_start(name)
            fn(rec, cfg, tracked)  # type: ignore[arg-type]
            log(f"   ({time.monotonic() - t:.0f} s)")
    finally:
        servers.stop_all()
    progress.finish()
    elapsed = time.monotonic() - t0
    rec.records = [r for r in rec.records if r.get("scenario") != "meta"]
    table = write_outputs(rec, cfg, elapsed, write_docs=not (quick or cfg.smoke or args.no_docs or cfg.only))
    print()
    print(table)
    log(f"results: {rec.path.relative_to(ROOT)}  table: {rec.path.with_suffix('.md').relative_to(ROOT)}")
    log(f"total {elapsed:.0f} s")
    tidy_logs(out)


def tidy_logs(out: Path) -> None:
    """Keep only the server logs that say something (a crash, a warning)."""
    if not out.exists():
        return
    for path in out.iterdir():
        if path.stat().st_size == 0:
            path.unlink()
    if not any(out.iterdir()):
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
