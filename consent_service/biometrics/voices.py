"""Embedding voices and telling speakers apart. Resemblyzer (torch) loads lazily, once per worker
process, on first use: importing this module loads neither torch nor the model."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from consent_service.biometrics.tracks import group_embeddings
from consent_service.settings import usable_cores

VOICE_MODEL = "resemblyzer/v1"
SAMPLE_RATE = 16_000
# What a lone voice said (`audio.speech_segments`): the lenient webrtcvad mode, and the seconds of
# audio kept either side of each stretch it finds. Voices are told apart on the strict mode's
# stretches, which keep turns apart. Chosen by bench/voice_accuracy.py.
HEARD_AGGRESSIVENESS = 1
SPEECH_CONTEXT = 0.2


class VoiceEmbedder(Protocol):
    """Embeds 16 kHz mono speech as one L2-normalised vector; `model_name` tags the templates."""

    model_name: str

    def embed(self, samples: np.ndarray) -> np.ndarray: ...


_encoder = None
_encoder_lock = threading.Lock()
# torch's intra-op threads in this process, applied when the model loads; None keeps torch's
# default, one a core. Set by `share_cores` (a prefork worker, before it forks its processes).
_torch_threads: int | None = None


def share_cores(processes: int, cores: int | None = None) -> int:
    """Give torch in this process (and the processes it forks later) its share of the `cores`
    (default: the usable ones) among `processes` processes that embed at once: `cores //
    processes` threads, at least one. Applied when the model loads, or now if it has. Why: each
    of N processes running N threads on N cores stalls whenever its siblings (or anything else)
    hold the cores: two processes embedding 16 s of speech at once on 2 cores took a median
    2.91 s an embedding with two threads each, 0.30 s with one (bench/worker_threads.py, README's
    Configuration). Returns the threads. Loads nothing itself."""
    global _torch_threads
    threads = max(1, (usable_cores() if cores is None else cores) // max(1, processes))
    with _encoder_lock:
        _torch_threads = threads
        if _encoder is not None:
            import torch

            torch.set_num_threads(threads)
    return threads


def _resemblyzer():
    global _encoder
    with _encoder_lock:
        if _encoder is None:
            import torch  # heavy, as is what follows: imported on first use only
            from resemblyzer import VoiceEncoder  # the bundled weights

            if _torch_threads is not None:
                torch.set_num_threads(_torch_threads)
            _encoder = VoiceEncoder("cpu", verbose=False)
        return _encoder


class ResemblyzerVoiceEmbedder:
    """Resemblyzer's GE2E speaker encoder (256 floats), weights shipped inside its wheel."""

    model_name = VOICE_MODEL

    def embed(self, samples: np.ndarray) -> np.ndarray:
        wav = np.asarray(samples, dtype=np.float32)
        peak = float(np.max(np.abs(wav))) if len(wav) else 0.0
        if peak > 0:
            wav = wav * (0.9 / peak)  # the same loudness for every recording
        vector = np.asarray(_resemblyzer().embed_utterance(wav), dtype=np.float64)
        return vector / (np.linalg.norm(vector) or 1.0)


@dataclass(frozen=True)
class Speaker:
    """One distinct voice in one recording: its windows' embeddings, most typical first (what
    told the voices apart), and `embedding`, the model's embedding of all the speech heard from
    that voice as one utterance (what is matched and what enrollment stores). `spans`: where that
    speech is, (start, end) in seconds, in the order heard."""

    embedding: np.ndarray
    windows: list[np.ndarray]
    seconds: float
    spans: tuple[tuple[float, float], ...]

    @property
    def first_heard(self) -> float:
        """Seconds into the recording where this voice is first heard."""
        return self.spans[0][0]


class _Speech(Protocol):
    # Read-only, so frozen dataclasses (audio.Speech) fit.
    @property
    def start(self) -> float: ...
    @property
    def samples(self) -> np.ndarray: ...


def speech_windows(
    segments: Sequence[_Speech], window: float, min_window: float
) -> list[tuple[float, np.ndarray]]:
    """Each speech stretch cut into windows of `window` seconds; a shorter tail is kept when it
    lasts `min_window` seconds, else added to the window before it."""
    size, least = int(window * SAMPLE_RATE), int(min_window * SAMPLE_RATE)
    out: list[tuple[float, np.ndarray]] = []
    for seg in segments:
        samples = seg.samples
        if len(samples) < least:
            continue
        starts = list(range(0, len(samples), size))
        if len(starts) > 1 and len(samples) - starts[-1] < least:
            starts.pop()
        for i, a in enumerate(starts):
            b = starts[i + 1] if i + 1 < len(starts) else len(samples)
            out.append((seg.start + a / SAMPLE_RATE, samples[a:b]))
    return out


def _centroid(vectors: Sequence[np.ndarray]) -> np.ndarray:
    mean = np.mean(vectors, axis=0)
    return mean / (np.linalg.norm(mean) or 1.0)


def _merge_by_centroid(
    groups: list[list[int]], embeddings: Sequence[np.ndarray], tolerance: float
) -> list[list[int]]:
    """Single windows are noisy (a 3 s window of far-field speech may sit far from the same
    speaker's other windows); a group's mean is not. Groups whose means are within `tolerance`
    are one speaker: merge the closest pair until none is that close."""
    groups = [list(g) for g in groups]
    while len(groups) > 1:
        means = [_centroid([embeddings[i] for i in g]) for g in groups]
        best = min(
            (
                (float(np.linalg.norm(means[a] - means[b])), a, b)
                for a in range(len(groups))
                for b in range(a + 1, len(groups))
            ),
        )
        if best[0] > tolerance:
            break
        _, a, b = best
        groups[a] += groups.pop(b)
    groups.sort(key=lambda g: (-len(g), g[0]))
    return groups


def find_speakers(
    segments: Sequence[_Speech],
    embedder: VoiceEmbedder,
    same_speaker: float,
    window: float = 3.0,
    min_window: float = 1.0,
    heard: Sequence[_Speech] | None = None,
) -> list[Speaker]:
    """Distinct voices in the speech, most heard first.

    Telling voices apart, on `segments` (speech as a strict detector cuts it, so that turns stay
    apart): the windows' embeddings grouped by average-linkage clustering on L2 distance between
    normalised embeddings (`same_speaker`), then groups whose means agree merged.

    What each voice is: the model's embedding of all that voice's speech as one utterance, not
    the mean of its windows' embeddings (the model averages over the whole utterance itself;
    short windows embedded apart are what lost a speaker's matches). When the windows are all one
    voice, all the recording's speech is that voice: `heard` (speech as a lenient detector finds
    it, with the edges of words kept; `segments` when not given), stretches too short to be a
    window included. When several voices speak, each is its own windows; stretches too short to
    be told apart join none. Only the stretches of `heard` that hold some strict speech count:
    the strict detector vouches that someone speaks there. With no window at all there is no
    voice: speech that short names people it should not (bench/voice_thresholds.py: a 0.8 s
    stranger's stretch came within 0.644 of another speaker)."""
    heard = segments if heard is None else _vouched(heard, segments)
    windows = speech_windows(segments, window, min_window)
    if not windows:
        return []
    embeddings = [embedder.embed(w) for _, w in windows]
    groups = group_embeddings(embeddings, list(range(len(embeddings))), same_speaker)
    groups = _merge_by_centroid(groups, embeddings, same_speaker)
    if len(groups) == 1:
        lone = [(seg.start, seg.samples) for seg in heard] or windows  # heard covers the windows
        return [_speaker(embedder, lone, embeddings)]
    return [
        _speaker(embedder, [windows[i] for i in group], [embeddings[i] for i in group])
        for group in groups
    ]


def _vouched(heard: Sequence[_Speech], segments: Sequence[_Speech]) -> list[_Speech]:
    """The lenient detector's stretches that hold some of the strict detector's speech: their
    extent (word edges, short pauses) without what the lenient mode alone fires on (noise, a
    distant murmur)."""

    def end(seg: _Speech) -> float:
        return seg.start + len(seg.samples) / SAMPLE_RATE

    return [h for h in heard if any(s.start < end(h) and h.start < end(s) for s in segments)]


def _speaker(
    embedder: VoiceEmbedder, speech: list[tuple[float, np.ndarray]], windows: list[np.ndarray]
) -> Speaker:
    """One voice from its speech (in the order heard) and its windows' embeddings."""
    speech = sorted(speech, key=lambda part: part[0])
    return Speaker(
        embedding=embedder.embed(np.concatenate([samples for _, samples in speech])),
        windows=windows,
        seconds=sum(len(samples) for _, samples in speech) / SAMPLE_RATE,
        spans=tuple((start, start + len(samples) / SAMPLE_RATE) for start, samples in speech),
    )
