"""One finding per distinct voice: speech cut into windows, windows grouped by speaker.

The embedder here is a stand-in whose geometry is known (each window's embedding points at its
speaker's direction, with per-window noise like a real model's), so the grouping rules themselves
are what is tested; the real model runs in the end-to-end tests on real speech."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from consent_service.biometrics.voices import (
    SAMPLE_RATE,
    _merge_by_centroid,
    find_speakers,
    speech_windows,
)

SPEAKERS = np.linalg.qr(np.random.default_rng(0).normal(size=(256, 4)))[0].T  # orthonormal


@dataclass(frozen=True)
class Stretch:
    start: float
    samples: np.ndarray


def said_by(speaker: int, seconds: float, start: float = 0.0) -> Stretch:
    """A stretch whose samples carry the speaker's number (the stand-in embedder reads it)."""
    return Stretch(start, np.full(int(seconds * SAMPLE_RATE), speaker, dtype=np.float32))


class StandInEmbedder:
    """Like the real model, it averages over the speech it is given: `noise` is a 3 s window's,
    and longer speech is embedded with less (the noise of a mean over more partial windows)."""

    model_name = "test/stand-in"

    def __init__(self, noise: float):
        self.rng = np.random.default_rng(7)
        self.noise = noise
        self.calls: list[float] = []  # seconds of speech embedded, per call

    def embed(self, samples: np.ndarray) -> np.ndarray:
        seconds = len(samples) / SAMPLE_RATE
        self.calls.append(seconds)
        noise = self.noise * np.sqrt(3.0 / max(seconds, 1.0))
        v = SPEAKERS[int(samples[0])] + self.rng.normal(0, noise, 256)
        return v / np.linalg.norm(v)


def test_windows_cover_each_stretch_and_fold_short_tails():
    windows = speech_windows([said_by(0, 7.5, start=10.0), said_by(1, 0.5)], 3.0, 1.0)
    # 7.5 s: two full windows and a 1.5 s tail, kept (it lasts at least 1 s).
    assert [(round(t, 2), len(w) / SAMPLE_RATE) for t, w in windows] == [
        (10.0, 3.0),
        (13.0, 3.0),
        (16.0, 1.5),
    ]
    folded = speech_windows([said_by(0, 6.5)], 3.0, 1.0)
    assert [len(w) / SAMPLE_RATE for _, w in folded] == [3.0, 3.5]  # 0.5 s tail joins


def test_two_voices_are_two_speakers_most_heard_first():
    speech = [said_by(1, 3.0, 0.0), said_by(2, 9.0, 3.0), said_by(1, 3.0, 12.0)]
    speakers = find_speakers(speech, StandInEmbedder(noise=0.03), same_speaker=0.75)
    assert [(round(s.seconds), round(s.first_heard)) for s in speakers] == [(9, 3), (6, 0)]
    assert float(speakers[0].embedding @ SPEAKERS[2]) > 0.9
    assert float(speakers[1].embedding @ SPEAKERS[1]) > 0.9
    assert all(abs(np.linalg.norm(s.embedding) - 1) < 1e-9 for s in speakers)


def test_one_noisy_voice_stays_one_speaker():
    speakers = find_speakers([said_by(3, 30.0)], StandInEmbedder(noise=0.035), same_speaker=0.75)
    assert len(speakers) == 1 and len(speakers[0].windows) == 10


def test_groups_whose_means_agree_are_merged():
    # Single windows of one far-field speaker may sit ~0.8 apart (beyond the window tolerance)
    # while the means of their groups agree: the centroid pass merges them; other voices stay.
    rng = np.random.default_rng(3)

    def window(speaker: int) -> np.ndarray:
        v = SPEAKERS[speaker] + rng.normal(0, 0.045, 256)
        return v / np.linalg.norm(v)

    embeddings = [window(0) for _ in range(6)] + [window(1) for _ in range(3)]
    # Average linkage would keep the two groups of speaker 0 apart...
    between = np.mean(
        [np.linalg.norm(embeddings[i] - embeddings[j]) for i in (0, 1, 2) for j in (3, 4, 5)]
    )
    assert between > 0.75
    # ...but their means are close, so they are one speaker; the other voice stays apart.
    merged = _merge_by_centroid([[0, 1, 2], [3, 4, 5], [6, 7, 8]], embeddings, 0.75)
    assert merged == [[0, 1, 2, 3, 4, 5], [6, 7, 8]]


def test_no_speech_no_speakers():
    assert find_speakers([], StandInEmbedder(noise=0.01), same_speaker=0.75) == []
    assert find_speakers([said_by(0, 0.4)], StandInEmbedder(noise=0.01), same_speaker=0.75) == []


def test_a_voice_is_the_model_s_embedding_of_all_its_speech_not_the_mean_of_its_windows():
    # One voice over 30 s: ten 3 s windows tell voices apart, then the whole 30 s is embedded as
    # one utterance (the real model averages over it itself; windows embedded apart lose matches).
    embedder = StandInEmbedder(noise=0.035)
    speakers = find_speakers([said_by(3, 30.0)], embedder, same_speaker=0.75)
    assert len(speakers) == 1 and len(speakers[0].windows) == 10
    assert embedder.calls == [3.0] * 10 + [30.0]
    assert float(speakers[0].embedding @ SPEAKERS[3]) > 0.97


def test_short_stretches_of_a_lone_voice_are_that_voice():
    # A reader pausing often: stretches shorter than a window are not thrown away; with one voice
    # in the windows, they are that voice's speech too.
    speech = [
        said_by(0, 0.6, 0.0),
        said_by(0, 4.0, 1.0),
        said_by(0, 0.8, 5.5),
        said_by(0, 0.7, 7.0),
    ]
    embedder = StandInEmbedder(noise=0.03)
    (speaker,) = find_speakers(speech, embedder, same_speaker=0.75)
    assert round(speaker.seconds, 1) == 6.1 and speaker.first_heard == 0.0
    assert embedder.calls[-1] == pytest.approx(6.1)
    assert len(speaker.windows) == 2  # the 4 s stretch: 3 s and a 1 s tail


def test_speech_too_short_for_a_window_is_no_voice():
    # Under a second here and there names people it should not: no window, no voice, however
    # much the lenient detector hears around it.
    embedder = StandInEmbedder(noise=0.03)
    short = [said_by(2, 0.6, 0.0), said_by(2, 0.8, 2.0)]
    assert find_speakers(short, embedder, 0.75) == []
    assert find_speakers(short, embedder, 0.75, heard=[said_by(2, 3.4, 0.0)]) == []
    assert embedder.calls == []


def test_short_stretches_among_several_voices_are_nobody_s():
    # Too short to tell apart: with two voices they could be either, so they join neither.
    speech = [said_by(1, 3.0, 0.0), said_by(2, 0.8, 3.5), said_by(2, 6.0, 5.0)]
    speakers = find_speakers(speech, StandInEmbedder(noise=0.03), same_speaker=0.75)
    assert [(s.seconds, s.first_heard) for s in speakers] == [(6.0, 5.0), (3.0, 0.0)]
    # Where each voice speaks: its windows (the 6 s stretch as two), not the short stretch.
    assert [s.spans for s in speakers] == [((5.0, 8.0), (8.0, 11.0)), ((0.0, 3.0),)]


def test_a_lone_voice_is_all_the_speech_heard_several_voices_only_their_windows():
    # Voices are told apart on the strict detector's stretches; a lone voice is then everything a
    # lenient detector heard (word edges, short stretches); several voices keep their windows.
    strict = [said_by(0, 3.0, 1.0), said_by(0, 0.6, 5.0)]
    heard = [said_by(0, 3.6, 0.8), said_by(0, 1.2, 4.8)]
    embedder = StandInEmbedder(noise=0.03)
    (speaker,) = find_speakers(strict, embedder, same_speaker=0.75, heard=heard)
    assert (round(speaker.seconds, 1), speaker.first_heard) == (4.8, 0.8)
    assert [end for span in speaker.spans for end in span] == pytest.approx([0.8, 4.4, 4.8, 6.0])
    assert embedder.calls == [3.0, pytest.approx(4.8)]

    two = [said_by(1, 3.0, 0.0), said_by(2, 6.0, 4.0)]
    speakers = find_speakers(two, embedder, 0.75, heard=[said_by(1, 11.0, 0.0)])
    assert [(s.seconds, s.first_heard) for s in speakers] == [(6.0, 4.0), (3.0, 0.0)]


def test_what_only_the_lenient_detector_hears_is_nobody_s_speech():
    # A murmur or noise far from any strict speech is not added to the lone voice.
    embedder = StandInEmbedder(noise=0.03)
    strict = [said_by(0, 3.0, 1.0)]
    (speaker,) = find_speakers(
        strict, embedder, 0.75, heard=[said_by(0, 3.4, 0.8), said_by(0, 20.0, 10.0)]
    )
    assert (round(speaker.seconds, 1), speaker.first_heard) == (3.4, 0.8)


def test_a_lone_voice_keeps_its_windows_when_the_lenient_detector_heard_none_of_it():
    (speaker,) = find_speakers(
        [said_by(0, 3.0, 1.0)], StandInEmbedder(noise=0.03), 0.75, heard=[said_by(0, 2.0, 9.0)]
    )
    assert (speaker.seconds, speaker.first_heard) == (3.0, 1.0)
