"""The minimum-versions run of ``.ci/run`` installs exactly pyproject.toml's lower bounds.

``.ci/constraints-min.txt`` pins each runtime dependency (and the ``redis`` extra) to the
version the suite is run on; if a bound moved without it, CI would prove an older or newer
range than the one users are promised.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / ".ci" / "constraints-min.txt"


def lower_bounds() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bounds: dict[str, Version] = {}
    for line in [*project["dependencies"], *project["optional-dependencies"]["redis"]]:
        requirement = Requirement(line)
        lower = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
        assert len(lower) == 1, f"{line!r} in pyproject.toml needs exactly one >= lower bound"
        bounds[canonicalize_name(requirement.name)] = lower[0]
    return bounds


def pins() -> dict[str, Version]:
    pinned: dict[str, Version] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{line!r} in {CONSTRAINTS.name} must pin with =="
        pinned[canonicalize_name(requirement.name)] = Version(spec.version)
    return pinned


def test_the_minimum_versions_run_pins_every_lower_bound_and_nothing_else() -> None:
    assert pins() == lower_bounds()
