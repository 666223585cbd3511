"""Autobahn|Testsuite ``fuzzingclient`` against the wsroute echo app, on each uvicorn protocol.

    python tests/autobahn/run.py                      # all three protocols (about 40 s)
    python tests/autobahn/run.py --protocols fastlane --cases '7.*'
    python tests/autobahn/run.py --write-docs         # also rewrite the table in docs/autobahn.md

For each server protocol (``websockets-sansio``, ``wsproto`` and wsroute's fastlane, which
is uvicorn's sansio protocol plus a scope extension) this starts ``uvicorn echo_app:app``
on 127.0.0.1 at a free port, runs ``wstest -m fuzzingclient`` against ``/echo`` with the
performance and compression cases (9.*, 12.*, 13.*) excluded, stops the server, then reads
the reports (``index.json``) and prints the case counts by behavior per protocol and every
case whose behavior differs between protocols.

The PyPI ``autobahntestsuite`` runs on Python 2.7 only. The runner looks for one (pyenv's
``2.7.18``, or the one named by ``--python27`` or ``$WSROUTE_PYTHON27``); without one it prints
``autobahn: skipped: …`` and exits 0. The suite and its pinned dependencies are installed
with that interpreter's pip into ``build/autobahn/py27-site`` (``pip --target``; reused while
the pins are unchanged; ``build/`` is not committed).

Exit status 1 when: a case is FAILED that is not an expected upstream failure (see
`EXPECTED_FAILED`), the fastlane's results differ from stock ``websockets-sansio`` in any
case, a protocol's run did not complete (timeout, server did not start, missing report), or
the server logged a traceback through wsroute's own code.

Everything it produces is under ``build/autobahn/``: the HTML/JSON reports per protocol
(``reports/<protocol>/index.html``), the server and wstest logs, ``report.md`` (the table)
and ``summary.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_BUILD = ROOT / "build" / "autobahn"
DOCS_PAGE = ROOT / "docs" / "autobahn.md"
DOCS_START = "<!-- autobahn-results:start -->"
DOCS_END = "<!-- autobahn-results:end -->"

# label -> uvicorn `--ws` value. The label names the agent in the reports.
PROTOCOLS: dict[str, str] = {
    "websockets-sansio": "websockets-sansio",
    "wsproto": "wsproto",
    "fastlane": "wsroute.fastlane:FastlaneProtocol",
}
REFERENCE = "websockets-sansio"  # the fastlane must match it case by case
FASTLANE = "fastlane"

EXCLUDE_CASES = ["9.*", "12.*", "13.*"]  # performance (9) and permessage-deflate (12, 13)

# The suite's last Python 2 release and the dependency pins it is known to run with.
REQUIREMENTS = [
    "autobahntestsuite==0.8.2",
    "autobahn==0.10.9",
    "twisted<21",
    "txaio==2.1.0",
    "zope.interface==4.6.0",
    "six",
]
PYENV_PY27 = Path("/root/.pyenv/versions/2.7.18/bin/python")
MIN_PIP = (9, 0)  # understands Requires-Python, so it picks the dependencies' last py2 releases
PIP_FOR_PY2 = "pip==20.3.4"  # the last pip for Python 2, if the interpreter has none usable

BEHAVIORS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]

# Cases that fail on a protocol by a documented choice of the library under uvicorn, not of
# wsroute. websockets treats a close frame in the middle of a fragmented message as a
# protocol error and answers 1002 ("incomplete fragmented message"); case 7.1.5 expects the
# 1000 it sent to be echoed. RFC 6455 says an endpoint "typically" echoes the code, which
# leaves another code allowed (websockets' compliance/README.rst, "Conformance notes").
# The fastlane is uvicorn's sansio protocol with the same websockets state machine.
_WEBSOCKETS_7_1_5 = (
    "websockets answers a close inside a fragmented message with 1002; the case wants its 1000 "
    "echoed (documented upstream choice)"
)
EXPECTED_FAILED: dict[str, dict[str, str]] = {
    "websockets-sansio": {"7.1.5": _WEBSOCKETS_7_1_5},
    "fastlane": {"7.1.5": _WEBSOCKETS_7_1_5},
}

# "Echo the first message, then fail on the next frame" cases. Strict OK needs the echo on
# the wire before the server fails the connection; NON-STRICT is the same behavior with the
# failure first. That is a race between the application task (the echo goes through the
# ASGI queue) and the protocol parsing the next bytes, so either result can come on any
# protocol from one run to the next (3.4, 4.1.5 and 4.2.5 were seen flipping on all three).
# For these cases OK and NON-STRICT count as one outcome when protocols are compared.
RACE_CASES = frozenset({"3.2", "3.3", "3.4", "4.1.3", "4.1.4", "4.1.5", "4.2.3", "4.2.4", "4.2.5", "5.15"})
# Stable differences explained (shown in the "why" column).
_UTF8_AT_END = "UTF-8 checked when the message is complete, not per frame (uvicorn's sansio protocol)"
CASE_NOTES = {case: _UTF8_AT_END for case in ("6.4.1", "6.4.2", "6.4.3", "6.4.4")}
RACE_WHY = "the echo races the fail-fast; OK and NON-STRICT are both passes"

# Python 2: put the --target folder on the path *with* its .pth files (zope's namespace
# package needs them; PYTHONPATH would skip them), then run wstest's console entry point.
WSTEST_BOOT = (
    "import site, sys; site.addsitedir(sys.argv.pop(1)); sys.argv[0] = 'wstest'; "
    "from autobahntestsuite.wstest import run; run()"
)
VERSIONS_BOOT = (
    "import site, sys; site.addsitedir(sys.argv[1]); "
    "import autobahntestsuite, autobahn, twisted; "
    "print('%s %s %s' % (autobahntestsuite.__version__, autobahn.__version__, twisted.__version__))"
)


def ensure_project_python() -> None:
    """Re-run with the repository's .venv when this Python cannot import uvicorn and wsroute."""
    try:
        import uvicorn  # noqa: F401

        import wsroute  # noqa: F401
    except ImportError:
        venv_py = ROOT / ".venv" / "bin" / "python"
        if venv_py.exists() and Path(sys.executable).resolve() != venv_py.resolve():
            os.execv(str(venv_py), [str(venv_py), *sys.argv])
        sys.exit("this Python cannot import uvicorn and wsroute: run it with the project's .venv")


# --- Python 2.7 and the test suite ----------------------------------------------------------


def _py_version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            env=_py2_env(),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def _py2_env() -> dict[str, str]:
    """The environment for the Python 2 processes: none of this Python's path settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONWARNINGS"] = "ignore"  # cryptography's "Python 2 is no longer supported"
    return env


def find_python27(explicit: str | None) -> str | None:
    """An interpreter that reports version 2.7: `explicit` alone if given, else pyenv's."""
    if explicit:
        candidates = [explicit]
    else:
        candidates = [str(PYENV_PY27)]
        roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
        if shutil.which("pyenv"):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                roots.insert(
                    0, subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
                )
        for root in filter(None, roots):
            candidates += sorted(
                glob.glob(os.path.join(root, "versions", "2.7*", "bin", "python")), reverse=True
            )
    for candidate in filter(None, candidates):
        if os.path.isfile(candidate) and _py_version(candidate) == (2, 7):
            return candidate
    return None


def _pip_version(cmd: list[str]) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60, env=_py2_env())
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.match(r"pip (\d+)\.(\d+)", out.stdout)
    return (int(match.group(1)), int(match.group(2))) if out.returncode == 0 and match else None


def pip_for(py27: str, build: Path) -> list[str]:
    """A pip command for `py27`, installing nothing into the interpreter itself.

    Its own pip if recent enough; else the pip wheel bundled with its ``ensurepip``, run in
    place (``python pip.whl/pip``); else the last pip for Python 2, fetched from PyPI by this
    Python's pip and run the same way.
    """
    own = [py27, "-s", "-m", "pip"]
    if (_pip_version(own) or (0,)) >= MIN_PIP:
        return own
    bundled = subprocess.run(
        [py27, "-c", "import ensurepip, os; print(os.path.dirname(ensurepip.__file__))"],
        capture_output=True,
        text=True,
        env=_py2_env(),
    )
    if bundled.returncode == 0:
        for wheel in sorted(glob.glob(os.path.join(bundled.stdout.strip(), "_bundled", "pip-*.whl"))):
            cmd = [py27, "-s", os.path.join(wheel, "pip")]
            if (_pip_version(cmd) or (0,)) >= MIN_PIP:
                print(f"autobahn: using the pip bundled with ensurepip: {Path(wheel).name}")
                return cmd
    wheels = build / "pip-bootstrap"
    print(f"autobahn: {py27} has no usable pip; fetching {PIP_FOR_PY2} from PyPI")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "2.7",
            "-d",
            str(wheels),
            PIP_FOR_PY2,
        ],
        check=True,
    )
    fetched = sorted(wheels.glob("pip-*.whl"))[-1]
    return [py27, "-s", os.path.join(str(fetched), "pip")]


def suite_versions(py27: str, target: Path) -> str | None:
    """``"<autobahntestsuite> <autobahn> <twisted>"`` if the suite imports from `target`."""
    out = subprocess.run(
        [py27, "-s", "-c", VERSIONS_BOOT, str(target)], capture_output=True, text=True, env=_py2_env()
    )
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_testsuite(py27: str, build: Path) -> tuple[Path, str]:
    """Install the suite into ``build/py27-site`` unless it is there with the same pins."""
    target = build / "py27-site"
    stamp = target / ".wsroute-requirements"
    wanted = "\n".join([py27, *REQUIREMENTS]) + "\n"
    if stamp.is_file() and stamp.read_text() == wanted:
        versions = suite_versions(py27, target)
        if versions:
            return target, versions
    print(f"autobahn: installing {' '.join(REQUIREMENTS)} into {target}")
    build.mkdir(parents=True, exist_ok=True)
    staging = build / "py27-site.partial"
    shutil.rmtree(staging, ignore_errors=True)
    log = build / "pip.log"
    cmd = [
        *pip_for(py27, build),
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--target",
        str(staging),
        *REQUIREMENTS,
    ]
    with log.open("w") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=_py2_env(), timeout=900)
    versions = suite_versions(py27, staging) if done.returncode == 0 else None
    if versions is None:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"installing the test suite failed (exit {done.returncode}); {log}:\n{tail}")
    (staging / ".wsroute-requirements").write_text(wanted)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target, versions


# --- one protocol ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGINT (uvicorn's graceful stop; wstest's too), then SIGKILL to its process group."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def serve(ws: str, log: Path, app: str = "echo_app:app") -> Iterator[int]:
    """``uvicorn <app> --ws <ws>`` on 127.0.0.1 at a free port; yields the port."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--app-dir",
        str(HERE),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ws",
        ws,
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"uvicorn --ws {ws} did not start; {log}:\n{log.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.05)
        yield port
    finally:
        _stop(proc)


@dataclass
class Run:
    """One protocol's run: its results by case id, or why there are none."""

    label: str
    ws: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    server_errors: int = 0  # "ERROR:" lines in the server log (uvicorn's own logging)
    wsroute_tracebacks: list[str] = field(default_factory=list)
    reports: Path | None = None


def run_protocol(
    label: str,
    ws: str,
    py27: str,
    site_dir: Path,
    build: Path,
    cases: list[str],
    timeout: float,
    app: str = "echo_app:app",
) -> Run:
    run = Run(label, ws)
    work = build / "runs" / label
    reports = build / "reports" / label
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(reports, ignore_errors=True)
    work.mkdir(parents=True)
    run.reports = reports
    server_log = work / "server.log"
    started = time.monotonic()
    try:
        with serve(ws, server_log, app) as port:
            spec = {
                "outdir": str(reports),
                "servers": [{"agent": label, "url": f"ws://127.0.0.1:{port}/echo"}],
                "cases": cases,
                "exclude-cases": EXCLUDE_CASES,
                "exclude-agent-cases": {},
            }
            (work / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
            cmd = [py27, "-s", "-c", WSTEST_BOOT, str(site_dir), "-m", "fuzzingclient", "-s", "spec.json"]
            with (work / "wstest.log").open("w") as out:
                client = subprocess.Popen(
                    cmd,
                    cwd=work,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=_py2_env(),
                    start_new_session=True,
                )
                try:
                    code = client.wait(timeout)
                except subprocess.TimeoutExpired:
                    _stop(client, grace=2)
                    last = (work / "wstest.log").read_text(errors="replace").strip().splitlines()[-1:]
                    run.error = f"wstest did not finish within {timeout:.0f} s (last line: {last})"
                    return run
            if code != 0:
                tail = (work / "wstest.log").read_text(errors="replace")[-3000:]
                run.error = f"wstest exited {code}; {work / 'wstest.log'}:\n{tail}"
                return run
    except RuntimeError as exc:
        run.error = str(exc)
        return run
    finally:
        run.seconds = time.monotonic() - started
        if server_log.exists():
            _scan_server_log(run, server_log)
    index = reports / "index.json"
    if not index.is_file():
        run.error = f"no report: {index} is missing"
        return run
    run.results = json.loads(index.read_text()).get(label, {})
    if not run.results:
        run.error = f"{index} has no results for agent {label!r}"
    return run


def _scan_server_log(run: Run, log: Path) -> None:
    """Count uvicorn's logged errors; keep every traceback that passes through wsroute."""
    import wsroute

    package = str(Path(wsroute.__file__).resolve().parent) + os.sep
    text = log.read_text(errors="replace")
    run.server_errors = sum(1 for line in text.splitlines() if line.startswith("ERROR:"))
    for block in re.split(r"(?=^Traceback \(most recent call last\):)", text, flags=re.MULTILINE):
        if block.startswith("Traceback") and f'File "{package}' in block:
            run.wsroute_tracebacks.append(block.strip())


# --- the verdict ----------------------------------------------------------------------------


def case_key(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split("."))


def behavior(case: str, result: dict[str, Any]) -> Any:
    """The case's behavior, with OK and NON-STRICT as one for the `RACE_CASES`."""
    found = result.get("behavior")
    return "OK/NON-STRICT" if case in RACE_CASES and found in ("OK", "NON-STRICT") else found


def outcome(case: str, result: dict[str, Any]) -> tuple[Any, Any, Any]:
    """What must be equal between the fastlane and stock sansio for a case."""
    return behavior(case, result), result.get("behaviorClose"), result.get("remoteCloseCode")


@dataclass
class Verdict:
    counts: dict[str, Counter[str]]
    differing: list[str]  # cases whose behavior is not the same on every protocol
    raced: list[str]  # of those, the RACE_CASES that differ only by OK vs NON-STRICT
    failed: dict[str, list[str]]  # protocol -> FAILED cases
    unexpected_failed: dict[str, list[str]]
    fastlane_mismatch: list[str]  # cases where fastlane's outcome != REFERENCE's
    missing: dict[str, list[str]]  # protocol -> cases the others have and it lacks
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def judge(runs: list[Run]) -> Verdict:
    done = [r for r in runs if r.results]
    counts = {r.label: Counter(v["behavior"] for v in r.results.values()) for r in done}
    all_cases = sorted({c for r in done for c in r.results}, key=case_key)
    differing = [c for c in all_cases if len({r.results.get(c, {}).get("behavior") for r in done}) > 1]
    raced = [c for c in differing if len({behavior(c, r.results.get(c, {})) for r in done}) == 1]
    failed = {
        r.label: sorted((c for c, v in r.results.items() if v["behavior"] == "FAILED"), key=case_key)
        for r in done
    }
    unexpected = {
        label: [c for c in cases if c not in EXPECTED_FAILED.get(label, {})]
        for label, cases in failed.items()
    }
    missing = {r.label: [c for c in all_cases if c not in r.results] for r in done}
    by_label = {r.label: r for r in done}
    mismatch: list[str] = []
    if FASTLANE in by_label and REFERENCE in by_label:
        ref, fast = by_label[REFERENCE].results, by_label[FASTLANE].results
        mismatch = [
            c
            for c in sorted(set(ref) | set(fast), key=case_key)
            if outcome(c, ref.get(c, {})) != outcome(c, fast.get(c, {}))
        ]
    problems: list[str] = []
    for r in runs:
        if r.error:
            problems.append(f"{r.label}: {r.error}")
        if r.wsroute_tracebacks:
            problems.append(
                f"{r.label}: the server logged {len(r.wsroute_tracebacks)} traceback(s) through wsroute"
            )
    for label, cases in unexpected.items():
        if cases:
            problems.append(f"{label}: FAILED {', '.join(cases)}")
    for label, cases in missing.items():
        if cases:
            problems.append(f"{label}: no result for {', '.join(cases)}")
    if mismatch:
        problems.append(f"{FASTLANE} differs from {REFERENCE} in {', '.join(mismatch)}")
    return Verdict(counts, differing, raced, failed, unexpected, mismatch, missing, problems)


def case_details(run: Run, case: str) -> dict[str, Any]:
    """The report's own account of a case: description, expectation and what went wrong."""
    assert run.reports is not None
    summary = run.results[case]
    details: dict[str, Any] = {
        "behavior": summary.get("behavior"),
        "behaviorClose": summary.get("behaviorClose"),
        "remoteCloseCode": summary.get("remoteCloseCode"),
    }
    path = run.reports / summary.get("reportfile", "")
    if path.is_file():
        report = json.loads(path.read_text())
        for key in (
            "description",
            "expectation",
            "result",
            "resultClose",
            "remoteCloseReason",
            "localCloseCode",
            "wasClean",
            "droppedByMe",
        ):
            details[key] = report.get(key)
    return details


# --- output ---------------------------------------------------------------------------------


def _cell(run: Run | None, case: str) -> str:
    if run is None or case not in run.results:
        return "—"
    v = run.results[case]
    code = v.get("remoteCloseCode")
    return f"{v['behavior']} (close {code})" if code is not None else v["behavior"]


def _why(case: str, labels: list[str]) -> str:
    notes = {EXPECTED_FAILED[label][case] for label in labels if case in EXPECTED_FAILED.get(label, {})}
    if case in CASE_NOTES:
        notes.add(CASE_NOTES[case])
    return "; ".join(sorted(notes)) or "—"


def render(runs: list[Run], verdict: Verdict, meta: dict[str, str], markdown: bool) -> str:
    """The results table and the differing cases, as aligned text or as Markdown."""
    labels = [r.label for r in runs]
    by_label = {r.label: r for r in runs}

    def per_protocol(value: Any) -> list[str]:
        return [str(value(by_label[label])) if by_label[label].results else "—" for label in labels]

    rows = [
        [name, *per_protocol(lambda r, name=name: verdict.counts[r.label].get(name, 0))] for name in BEHAVIORS
    ]
    rows.append(["total", *per_protocol(lambda r: len(r.results))])
    rows.append(["run time (s)", *(f"{by_label[label].seconds:.1f}" for label in labels)])
    rows.append(["server errors logged", *(str(by_label[label].server_errors) for label in labels)])
    stable = [c for c in verdict.differing if c not in verdict.raced]
    diff_rows = [[c, *(_cell(by_label[label], c) for label in labels), _why(c, labels)] for c in stable]
    raced_rows = [[c, *(_cell(by_label[label], c) for label in labels)] for c in verdict.raced]

    def table(header: list[str], body: list[list[str]]) -> list[str]:
        if markdown:
            return [
                "| " + " | ".join(header) + " |",
                "|" + "|".join("---" for _ in header) + "|",
                *("| " + " | ".join(row) + " |" for row in body),
            ]
        widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        return [
            fmt.format(*header).rstrip(),
            fmt.format(*("-" * w for w in widths)).rstrip(),
            *(fmt.format(*row).rstrip() for row in body),
        ]

    gap = [""] if markdown else []
    out: list[str] = []
    if markdown:
        out += [
            f"Run of {meta['date']} ({meta['seconds']} s for {len(labels)} protocols): {meta['stack']}. "
            f"Excluded: {', '.join(EXCLUDE_CASES)}.",
            "",
        ]
    out += table(["behavior", *labels], rows)
    out.append("")
    if diff_rows:
        out += ["Cases whose behavior differs between protocols:", *gap]
        out += table(["case", *labels, "why"], diff_rows)
    else:
        out.append("No case's behavior differs between the protocols.")
    out.append("")
    if raced_rows:
        out += [f"Differing in this run by timing only ({RACE_WHY}):", *gap]
        out += table(["case", *labels], raced_rows)
        out.append("")
    if verdict.fastlane_mismatch:
        out.append(f"fastlane vs stock {REFERENCE}: DIFFERENT in {', '.join(verdict.fastlane_mismatch)}.")
    elif FASTLANE in verdict.counts and REFERENCE in verdict.counts:
        out.append(
            f"fastlane vs stock {REFERENCE}: the same in every case (behavior, closing behavior "
            "and close code compared; OK = NON-STRICT in the timing-dependent cases)."
        )
    return "\n".join(out) + "\n"


def write_docs(markdown_table: str) -> None:
    page = DOCS_PAGE.read_text()
    start, end = page.index(DOCS_START) + len(DOCS_START), page.index(DOCS_END)
    DOCS_PAGE.write_text(page[:start] + "\n" + markdown_table + page[end:])


def stack_versions(suite: str) -> str:
    from importlib.metadata import version

    ab_suite, ab, twisted = suite.split()
    parts = [
        f"uvicorn {version('uvicorn')}",
        f"websockets {version('websockets')}",
        f"wsproto {version('wsproto')}",
        f"wsroute {version('wsroute')}",
        f"Python {sys.version.split()[0]}",
        f"autobahntestsuite {ab_suite} (autobahn {ab}, Twisted {twisted}) on Python 2.7",
    ]
    return ", ".join(parts)


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--protocols",
        default=",".join(PROTOCOLS),
        help=f"comma-separated, of {', '.join(PROTOCOLS)} (default: all)",
    )
    parser.add_argument("--cases", default="*", help="comma-separated case patterns (default: *)")
    parser.add_argument(
        "--python27", help="the Python 2.7 to run wstest with (default: $WSROUTE_PYTHON27, else pyenv's)"
    )
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD, help="default: build/autobahn")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per protocol's wstest run")
    parser.add_argument(
        "--app",
        default="echo_app:app",
        help="the ASGI app, importable from tests/autobahn (default: %(default)s)",
    )
    parser.add_argument("--write-docs", action="store_true", help="rewrite the results in docs/autobahn.md")
    args = parser.parse_args(argv)
    labels = [p.strip() for p in args.protocols.split(",") if p.strip()]
    unknown = [p for p in labels if p not in PROTOCOLS]
    if unknown:
        parser.error(f"unknown protocol(s) {', '.join(unknown)}; choose from {', '.join(PROTOCOLS)}")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]

    explicit = args.python27 or os.environ.get("WSROUTE_PYTHON27")
    py27 = find_python27(explicit)
    if py27 is None:
        looked = explicit or f"{PYENV_PY27} and pyenv's versions/2.7*"
        print(
            "autobahn: skipped: no Python 2.7 interpreter (the PyPI autobahntestsuite runs on 2.7 "
            f"only); looked for {looked}. Install one with `pyenv install 2.7.18`, or name one with "
            "--python27 or $WSROUTE_PYTHON27."
        )
        return 0
    started = time.monotonic()
    build: Path = args.build_dir.resolve()
    build.mkdir(parents=True, exist_ok=True)
    try:
        site_dir, suite = ensure_testsuite(py27, build)
    except (RuntimeError, subprocess.SubprocessError) as exc:
        print(f"autobahn: FAILED: could not install the test suite for {py27}: {exc}")
        return 1
    print(f"autobahn: wstest on {py27} (autobahntestsuite, autobahn, Twisted: {suite})")

    runs: list[Run] = []
    for label in labels:
        print(f"autobahn: {label} (uvicorn --ws {PROTOCOLS[label]}) ...", flush=True)
        run = run_protocol(label, PROTOCOLS[label], py27, site_dir, build, cases, args.timeout, args.app)
        status = run.error.splitlines()[0] if run.error else f"{len(run.results)} cases"
        print(f"autobahn: {label}: {status} in {run.seconds:.1f} s", flush=True)
        runs.append(run)
    seconds = time.monotonic() - started

    verdict = judge(runs)
    meta = {"date": dt.date.today().isoformat(), "stack": stack_versions(suite), "seconds": f"{seconds:.0f}"}
    print()
    print(render(runs, verdict, meta, markdown=False))
    for run in runs:
        for case in verdict.failed.get(run.label, []):
            expected = EXPECTED_FAILED.get(run.label, {}).get(case)
            print(
                f"FAILED {case} on {run.label}"
                + (f" (expected: {expected})" if expected else " (UNEXPECTED)")
            )
            for key, value in case_details(run, case).items():
                print(f"    {key}: {value}")
        for tb in run.wsroute_tracebacks[:3]:
            print(f"--- {run.label}: traceback through wsroute in the server log:\n{tb}")
        if len(run.wsroute_tracebacks) > 3:
            print(f"--- {run.label}: {len(run.wsroute_tracebacks) - 3} more in {build / 'runs' / run.label}")
        if run.error:
            print(f"--- {run.label}: {run.error}")
    for run in runs:
        for case in EXPECTED_FAILED.get(run.label, {}):
            if run.results.get(case, {}).get("behavior") not in (None, "FAILED"):
                print(f"note: {case} no longer fails on {run.label}: remove it from EXPECTED_FAILED")

    markdown = render(runs, verdict, meta, markdown=True)
    (build / "report.md").write_text(markdown)
    (build / "summary.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "seconds": {r.label: round(r.seconds, 1) for r in runs},
                "counts": {label: dict(c) for label, c in verdict.counts.items()},
                "differing": {
                    c: {r.label: r.results.get(c, {}).get("behavior") for r in runs}
                    for c in verdict.differing
                },
                "failed": verdict.failed,
                "fastlane_mismatch": verdict.fastlane_mismatch,
                "problems": verdict.problems,
            },
            indent=2,
        )
        + "\n"
    )
    if args.write_docs:
        write_docs(markdown)
        print(f"autobahn: wrote the table into {DOCS_PAGE.relative_to(ROOT)}")
    print(f"autobahn: reports in {build / 'reports'}/<protocol>/index.html; total {seconds:.1f} s")
    if verdict.ok:
        print("autobahn: passed")
        return 0
    print("autobahn: FAILED\n" + "\n".join(f"  - {p}" for p in verdict.problems))
    return 1


if __name__ == "__main__":
    ensure_project_python()
    sys.exit(main())
