"""Real sample photos and recordings for the demo and tests, fetched once from PyPI (source
distributions carry them) and cached in `Settings.samples_dir`; never committed, never hand-made.
Only the demo, the tests and the benchmarks use this module: nothing the service runs imports it."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from consent_service.settings import Settings

Sdist = tuple[str, str, str]  # (project, version, folder inside the archive)

FACE_SDIST: Sdist = ("face_recognition", "1.3.0", "tests/test_images/")
GROUP_SDIST: Sdist = ("insightface", "2.1", "insightface/data/images/")
# Real speech: meeting recordings with speaker turns (debug.*.rttm), and one LibriVox reader.
MEETING_SDIST: Sdist = ("pyannote.audio", "4.0.7", "tests/data/")
READER_SDIST: Sdist = ("pocketsphinx", "5.1.1", "test/data/librivox/")


def fetch(name: str, version: str, inner: str, target: Path) -> None:
    """Download the source distribution `name==version` and copy the files directly inside its
    folder `inner` into `target`."""
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


class Samples:
    """The sample files cached in one folder, each source distribution fetched on first use."""

    def __init__(self, cache_dir: Path):
        self.cache_dir = cache_dir

    @classmethod
    def from_settings(cls, settings: Settings) -> Samples:
        return cls(settings.samples_dir)

    def folder(self, sdist: Sdist) -> Path:
        """The cached folder of one source distribution's sample files, fetching them if needed."""
        folder = self._cached(sdist)
        if not (folder / ".complete").exists():
            fetch(*sdist, folder)
            (folder / ".complete").touch()
        return folder

    def _cached(self, sdist: Sdist) -> Path:
        return self.cache_dir / f"{sdist[0]}-{sdist[1]}"

    def sample(self, name: str) -> Path:
        """Path of one sample image (e.g. `obama.jpg`, `biden.jpg`, `t1.jpg`), fetching it if
        needed."""
        for sdist in (FACE_SDIST, GROUP_SDIST):
            path = self._cached(sdist) / name
            if path.exists() or (self.folder(sdist) / name).exists():
                return path
        raise FileNotFoundError(f"no sample image named {name!r}")

    def speech_turns(self, min_seconds: float = 2.0) -> list[tuple[Path, str, float, float]]:
        """Speech of one speaker alone in the meeting recordings, from their `debug.*.rttm`
        labels: (wav file, speaker, start, end) for every stretch of at least `min_seconds`
        inside one turn that no other speaker's turn overlaps. Some speakers talk in more than
        one file."""
        folder = self.folder(MEETING_SDIST)
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
                others = sorted(
                    (s, e) for sp, s, e in rows if sp != speaker and s < end and e > start
                )
                pieces, cursor = [], start
                for s, e in others:
                    if s > cursor:
                        pieces.append((cursor, s))
                    cursor = max(cursor, e)
                if cursor < end:
                    pieces.append((cursor, end))
                clean += [(wav, speaker, a, b) for a, b in pieces if b - a >= min_seconds]
        return clean
