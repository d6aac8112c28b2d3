"""Audio for voice work: decode any accepted upload to 16 kHz mono, and find where speech is.

Decoding shares the video decoder's safe container opening (`consent_service.media.video`): from
memory only, the demuxer chosen by our own sniffing, every nested open refused, so no playlist,
concat list or URL inside the media is ever followed. PyAV and webrtcvad load in workers only.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
import webrtcvad

from consent_service.errors import MediaRejected
from consent_service.media.sniff import AUDIO_DEMUXERS, VIDEO_DEMUXERS
from consent_service.media.video import decode_errors, open_container

SAMPLE_RATE = 16_000
# The sample rates recordings use, from telephone speech (8 kHz) down to a margin and up to
# studio audio (384 kHz). A header may declare any 32-bit rate: resampling 1.9 GHz "audio" to
# 16 kHz took 15 s of CPU and 2 GB for a 4.8 KB WAV (a fuzzing finding), so others are refused.
SAMPLE_RATES = (4_000, 384_000)
_FRAME = SAMPLE_RATE * 30 // 1000  # webrtcvad takes 10, 20 or 30 ms frames


def decode_audio(data: bytes, max_seconds: float) -> np.ndarray:
    """The first audio track of an audio file or a video container, as float32 samples in
    [-1, 1], mono, at 16 kHz. Raises MediaRejected, with a reason a person can act on, for
    anything that is not such a file, has no audio track, is damaged, or runs past `max_seconds`."""
    limit = int(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    with open_container(data, AUDIO_DEMUXERS + VIDEO_DEMUXERS) as container:
        if not container.streams.audio:
            raise MediaRejected("The file has no audio track.")
        stream = container.streams.audio[0]
        _check_rate(stream.codec_context.sample_rate if stream.codec_context else None)
        declared = container.duration / av.time_base if container.duration else None
        if declared is not None and declared > max_seconds:
            raise MediaRejected(
                "The recording declares %(seconds)s seconds; the limit is %(limit)s s.",
                seconds=f"{declared:,.0f}",
                limit=f"{max_seconds:g}",
            )
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            for frame in container.decode(stream):
                _check_rate(frame.sample_rate)  # a stream may change its rate midway
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    total += len(chunk)
                    if total > limit:
                        raise MediaRejected(
                            "The recording runs past %(limit)s seconds (the limit); "
                            "send a shorter one.",
                            limit=f"{max_seconds:g}",
                        )
                    chunks.append(chunk)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except decode_errors as exc:
            raise MediaRejected(
                "The audio is damaged or truncated and cannot be decoded (%(reason)s).",
                reason=str(exc),
            ) from None
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if len(samples) == 0:
        raise MediaRejected("The audio track contains no sound.")
    return np.clip(np.nan_to_num(samples[:limit]), -1.0, 1.0)


def _check_rate(rate: int | None) -> None:
    low, high = SAMPLE_RATES
    if rate and not low <= rate <= high:  # 0 or None: not declared here
        raise MediaRejected(
            "The audio declares %(rate)s samples a second, which no recording uses "
            "(%(low)s to %(high)s): the file is damaged or not a recording.",
            rate=f"{rate:,}",
            low=f"{low:,}",
            high=f"{high:,}",
        )


@dataclass(frozen=True)
class Speech:
    """One stretch of speech: where it is in the recording (seconds) and its samples."""

    start: float
    end: float
    samples: np.ndarray


def speech_segments(
    samples: np.ndarray,
    aggressiveness: int = 3,
    min_seconds: float = 0.5,
    max_gap: float = 0.3,
    context: float = 0.0,
) -> list[Speech]:
    """Stretches of speech in 16 kHz mono audio, by webrtcvad on 30 ms frames: voiced frames
    separated by less than `max_gap` join; stretches shorter than `min_seconds` are dropped.
    Near-silent audio has none (the detector fires on faint noise otherwise).

    `context` seconds of the audio either side of each stretch are kept with it (stretches that
    then touch join): at its strictest the detector clips the onsets and ends of words, and a
    speaker model embeds whole words better than clipped ones, and better than clipped stretches
    spliced together."""
    n = len(samples) // _FRAME
    if n == 0 or float(np.max(np.abs(samples))) < 1e-3:
        return []
    vad = webrtcvad.Vad(aggressiveness)
    pcm = (np.clip(samples[: n * _FRAME], -1.0, 1.0) * 32767).astype("<i2")
    voiced = [
        vad.is_speech(pcm[i * _FRAME : (i + 1) * _FRAME].tobytes(), SAMPLE_RATE) for i in range(n)
    ]
    gap_frames = max(1, round(max_gap * 1000 / 30))
    segments: list[tuple[int, int]] = []
    start: int | None = None  # the open stretch's first voiced frame
    last = 0  # its last voiced frame (read only while a stretch is open)
    for i, v in enumerate(voiced):
        if not v:
            continue
        if start is None:
            start = last = i
        elif i - last > gap_frames:
            segments.append((start, last + 1))
            start = i
        last = i
    if start is not None:
        segments.append((start, last + 1))
    min_frames = min_seconds * 1000 / 30
    segments = [(a, b) for a, b in segments if b - a >= min_frames]
    pad = round(context * 1000 / 30)
    if pad > 0:
        wide: list[tuple[int, int]] = []
        for a, b in segments:
            a, b = max(0, a - pad), min(n, b + pad)
            if wide and a <= wide[-1][1]:
                wide[-1] = (wide[-1][0], b)
            else:
                wide.append((a, b))
        segments = wide
    return [Speech(a * 0.03, b * 0.03, samples[a * _FRAME : b * _FRAME]) for a, b in segments]
