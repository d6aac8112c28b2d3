"""Real sample photos for the demo and tests, fetched once from PyPI (the face_recognition source
distribution carries them) and cached; never committed, never hand-made."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

FACE_SDIST = ("face_recognition", "1.3.0", "tests/test_images/")
GROUP_SDIST = ("insightface", "2.1", "insightface/data/images/")


def cache_dir() -> Path:
    base = os.environ.get("CONSENT_SERVICE_SAMPLES")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "consent-service" / "samples"


def _fetch(name: str, version: str, inner: str, target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-qq",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"{name}=={version}",
                "-d",
                tmp,
            ],
            check=True,
        )
        (archive,) = Path(tmp).glob("*.tar.gz")
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                rel = member.name.split("/", 1)[-1]
                if member.isfile() and rel.startswith(inner) and "/" not in rel[len(inner) :]:
                    src = tar.extractfile(member)
                    if src is not None:
                        (target / Path(rel).name).write_bytes(src.read())


def sample(name: str) -> Path:
    """Path of one sample image (e.g. `obama.jpg`, `biden.jpg`, `t1.jpg`), fetching it if needed."""
    for sdist in (FACE_SDIST, GROUP_SDIST):
        folder = cache_dir() / f"{sdist[0]}-{sdist[1]}"
        path = folder / name
        if path.exists():
            return path
        if not (folder / ".complete").exists():
            _fetch(*sdist, folder)
            (folder / ".complete").touch()
            if path.exists():
                return path
    raise FileNotFoundError(f"no sample image named {name!r}")
