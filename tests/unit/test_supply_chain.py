"""The lock file `.ci/run` installs from (`pip install --require-hashes -r requirements.lock`)
says what pyproject.toml says: every requirement pinned within its range, with hashes; torch the
CPU build on the machine; nothing pulled in that the lock does not pin. Offline: it reads the files
and the installed packages' metadata, never an index."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
# README's command (the lock's header repeats the one that wrote it).
COMMAND = (
    "pip-compile --all-build-deps --allow-unsafe --constraint=constraints.txt --extra=dev "
    "--extra=voice --generate-hashes --no-emit-find-links --no-emit-index-url "
    "--output-file=requirements.lock pyproject.toml"
)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+?)(?: \\)?$")


def _pins() -> dict[str, tuple[Version, set[str], int]]:
    """name → (version, extras, number of hashes), from the lock's requirement lines."""
    pins: dict[str, tuple[Version, set[str], int]] = {}
    current = None
    for line in LOCK.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith(" "):
            assert current is not None and line.strip().startswith("--hash=sha256:"), line
            version, extras, hashes = pins[current]
            pins[current] = (version, extras, hashes + 1)
            continue
        match = _PIN.match(line)
        assert match, f"not a pinned requirement: {line!r}"
        name, extras, version = match.groups()
        current = canonicalize_name(name)
        assert current not in pins, f"{name} pinned twice"
        names = {e.strip() for e in (extras or "[]")[1:-1].split(",") if e.strip()}
        pins[current] = (Version(version), names, 0)
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lines = list(project["project"]["dependencies"])
    for extra in ("dev", "voice"):
        lines += project["project"]["optional-dependencies"][extra]
    lines += project["build-system"]["requires"]
    lines += [
        line.split("#")[0].strip()
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    return [Requirement(line) for line in lines]


@pytest.fixture(scope="module")
def pins():
    return _pins()


def test_the_lock_was_written_by_the_readme_command():
    assert COMMAND in LOCK.read_text()
    assert COMMAND in (ROOT / "README.md").read_text().replace("\\\n    ", "")


def test_every_pin_is_exact_and_hashed(pins):
    assert len(pins) > 100
    assert all(hashes >= 1 for _, _, hashes in pins.values()), [
        name for name, (_, _, hashes) in pins.items() if hashes == 0
    ]


def test_every_declared_requirement_is_pinned_within_its_range(pins):
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} (pyproject.toml or constraints.txt) is not in the lock"
        version, extras, _ = pins[name]
        assert req.specifier.contains(version, prereleases=True), f"{req}: the lock has {version}"
        assert req.extras <= extras, f"{req}: the lock pins it without {req.extras - extras}"


def test_torch_is_the_cpu_build_on_the_machine_and_nothing_pulls_cuda(pins):
    assert pins["torch"][0] == Version("2.13.0+cpu")
    assert pins["torch"][2] == 1  # that one file's hash: no other build of 2.13.0 may install
    gpu = [n for n in pins if n.startswith(("nvidia-", "cuda-")) or n in ("triton", "cupy")]
    assert gpu == []


def test_the_installed_packages_need_nothing_the_lock_does_not_pin(pins):
    """The lock is closed under dependencies: what each pinned package requires (for the extras
    the lock installs it with) is pinned too. pip enforces the same at `--require-hashes`
    install; this says it in the fast loop. Packages not installed here are passed over."""
    missing = []
    for name, (_, extras, _) in pins.items():
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            wanted = req.marker is None or any(
                req.marker.evaluate({"extra": extra}) for extra in ("", *extras)
            )
            if wanted and canonicalize_name(req.name) not in pins:
                missing.append(f"{name} needs {req}")
    assert missing == []
