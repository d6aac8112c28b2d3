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
# Real speech: meeting recordings with speaker turns (debug.*.rttm), and one LibriVox reader.
MEETING_SDIST = ("pyannote.audio", "4.0.7", "tests/data/")
READER_SDIST = ("pocketsphinx", "5.1.1", "test/data/librivox/")


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


def sample_folder(sdist: tuple[str, str, str]) -> Path:
    """The cached folder of one source distribution's sample files, fetching them if needed."""
    folder = cache_dir() / f"{sdist[0]}-{sdist[1]}"
    if not (folder / ".complete").exists():
        _fetch(*sdist, folder)
        (folder / ".complete").touch()
    return folder


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


def speech_turns(min_seconds: float = 2.0) -> list[tuple[Path, str, float, float]]:
    """Speech of one speaker alone in the meeting recordings, from their `debug.*.rttm` labels:
    (wav file, speaker, start, end) for every stretch of at least `min_seconds` inside one turn
    that no other speaker's turn overlaps. Some speakers talk in more than one file."""
    folder = sample_folder(MEETING_SDIST)
    turns: dict[str, list[tuple[str, float, float]]] = {}
    for rttm in sorted(folder.glob("debug.*.rttm")):
        for line in rttm.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 8 and parts[0] == "SPEAKER":
                start, length = float(parts[3]), float(parts[4])
                turns.setdefault(parts[1], []).append((parts[7], start, start + length))
    clean = []
    for uri, rows in sorted(turns.items()):
        wav = folder / f"{uri}.wav"
        if not wav.exists():
            continue
        for speaker, start, end in rows:
            others = sorted((s, e) for sp, s, e in rows if sp != speaker and s < end and e > start)
            pieces, cursor = [], start
            for s, e in others:
                if s > cursor:
                    pieces.append((cursor, s))
                cursor = max(cursor, e)
            if cursor < end:
                pieces.append((cursor, end))
            clean += [(wav, speaker, a, b) for a, b in pieces if b - a >= min_seconds]
    return clean
