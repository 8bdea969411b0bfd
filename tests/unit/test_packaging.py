"""One version source, and installs pinned by hash-checked locks that follow pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import relay

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# `name==version ; marker \` then one `--hash=sha256:…` line or more (pip's requirements format)
_PIN = re.compile(r"^([a-z0-9][a-z0-9._-]*)==([^\s;\\]+)", re.M)


def _locked(name: str) -> dict[str, list[Version]]:
    text = (REPO / name).read_text()
    pins: dict[str, list[Version]] = {}
    for pkg, ver in _PIN.findall(text):
        pins.setdefault(canonicalize_name(pkg), []).append(Version(ver))
    return pins


def _entries(name: str) -> list[str]:
    """Each requirement of a lock with its continuation lines, comments left out."""
    text = (REPO / name).read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#") and line.strip()]
    return re.split(r"\n(?=[a-z0-9])", "\n".join(lines))


def test_the_version_is_written_once_in_pyproject() -> None:
    assert relay.__version__ == PYPROJECT["project"]["version"] == metadata.version("relay")
    init = (REPO / "relay" / "__init__.py").read_text()
    assert PYPROJECT["project"]["version"] not in init


def test_av_is_capped_below_its_next_major() -> None:
    av = next(Requirement(r) for r in PYPROJECT["project"]["dependencies"] if Requirement(r).name == "av")
    uppers = [Version(s.version) for s in av.specifier if s.operator == "<"]
    assert uppers and all(u == Version(str(u.major)) for u in uppers)  # `<19`, a major, not `<18.3`
    locked = _locked("requirements.lock")["av"]
    assert all(v in av.specifier for v in locked)
    assert all(v.major < uppers[0].major for v in locked)


def test_every_entry_of_both_locks_is_pinned_with_hashes() -> None:
    for lock in ("requirements.lock", "requirements-test.lock"):
        entries = _entries(lock)
        assert len(entries) > 20
        for entry in entries:
            assert _PIN.match(entry), (lock, entry[:80])
            assert "--hash=sha256:" in entry, (lock, entry[:80])


def test_the_locks_satisfy_pyproject_and_agree_with_each_other() -> None:
    run_time, test = _locked("requirements.lock"), _locked("requirements-test.lock")
    build = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    needs = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]] + build
    test_needs = needs + [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["test"]]
    for lock, reqs in ((run_time, needs), (test, test_needs)):
        for req in reqs:
            versions = lock.get(canonicalize_name(req.name))
            assert versions, f"{req.name} is not in the lock: run scripts/lock"
            assert all(v in req.specifier for v in versions), (req, versions)
    # what the studio PCs run is what the tests ran
    for name, versions in run_time.items():
        assert test.get(name) == versions, name
