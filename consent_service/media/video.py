"""Safe decoding of uploaded audio/video containers with PyAV, from memory, within limits.

FFmpeg can follow references inside media (HLS and ffconcat playlists, MOV data references,
nested URLs). None is ever followed: the demuxer is chosen from our own sniffing among a short
list, every protocol is refused for nested opens, and MOV external references are switched off.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import av
import av.container
import numpy as np

from consent_service.errors import MediaRejected
from consent_service.media.limits import VideoLimits
from consent_service.media.sniff import AUDIO_DEMUXERS, VIDEO_DEMUXERS, container_format

# FFmpeg and PyAV raise more than FFmpegError on hostile files (IndexError on a missing stream
# table, UnicodeDecodeError from metadata…): each one is a damaged upload, not a crash.
_DECODE_ERRORS = (av.FFmpegError, OSError, EOFError, ValueError, IndexError, KeyError)

_DEMUXER_OPTIONS = {
    # "none" names no protocol: any file or URL a demuxer tries to open from inside the media fails.
    "*": {"protocol_whitelist": "none"},
    # MOV/MP4 "data references" point at external files; also never resolve absolute paths.
    "mov": {"enable_drefs": "0", "use_absolute_path": "0"},
}


@dataclass(frozen=True)
class SampledFrame:
    time: float  # seconds from the start
    rgb: np.ndarray  # (height, width, 3) uint8, upright


def _refuse_nested_open(url: str, flags: int, options: dict) -> None:
    raise PermissionError(f"media may not open other files or URLs ({url!r})")


@contextmanager
def open_container(
    data: bytes, demuxers: Sequence[str] = VIDEO_DEMUXERS + AUDIO_DEMUXERS
) -> Iterator[av.container.InputContainer]:
    """An open PyAV input container over `data`, demuxed only by one of `demuxers`.

    Raises MediaRejected for empty data, an unrecognised or refused container (playlists
    included), and anything FFmpeg cannot open. Errors while reading the container's packets are
    the caller's to map (see `decode_errors`)."""
    if not data:
        raise MediaRejected("The file is empty.")
    fmt = container_format(data)
    if fmt is None or fmt not in demuxers:
        raise MediaRejected(
            "The file is not a media container we accept "
            "(MP4/MOV, WebM/Matroska, AVI; WAV, FLAC, Ogg, MP3 for audio). "
            "Playlists and stream descriptions (HLS, ffconcat, SDP) are never accepted: "
            "upload the media file itself."
        )
    options = {**_DEMUXER_OPTIONS["*"], **_DEMUXER_OPTIONS.get(fmt, {})}
    try:
        container = av.open(
            io.BytesIO(data),
            mode="r",
            format=fmt,
            options=options,
            metadata_errors="replace",
            io_open=_refuse_nested_open,
        )
    except _DECODE_ERRORS as exc:
        raise MediaRejected(
            "The media is damaged or truncated and cannot be opened (%(reason)s).", reason=str(exc)
        ) from None
    try:
        yield container
    finally:
        container.close()


decode_errors = _DECODE_ERRORS


def _seconds(value, time_base) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _check_declared(container: av.container.InputContainer, stream, limits: VideoLimits) -> None:
    """Refuse on what the headers claim, before decoding a single frame."""
    durations = [
        container.duration / av.time_base if container.duration else None,
        _seconds(stream.duration, stream.time_base),
    ]
    longest = max((d for d in durations if d is not None), default=None)
    if longest is not None and longest > limits.max_seconds:
        raise MediaRejected(
            "The video declares %(seconds)s seconds; the limit is %(limit)s s.",
            seconds=f"{longest:,.0f}",
            limit=f"{limits.max_seconds:g}",
        )
    if stream.frames and stream.frames > limits.max_frames:
        raise MediaRejected(
            "The video declares %(frames)s frames; the limit is %(limit)s.",
            frames=f"{stream.frames:,}",
            limit=f"{limits.max_frames:,}",
        )
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > limits.max_pixels:
        raise MediaRejected(
            "The video is %(width)d×%(height)d pixels; the limit is %(limit)s pixels per frame.",
            width=width,
            height=height,
            limit=f"{limits.max_pixels:,}",
        )


def _upright(frame: av.VideoFrame) -> np.ndarray:
    rgb = frame.to_ndarray(format="rgb24")
    # Phones record sideways and store the turn as a display matrix; faces must stand upright.
    # (degrees counter-clockwise, as FFmpeg's av_display_rotation_get; np.rot90 turns the same way)
    turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def sample_frames(data: bytes, limits: VideoLimits) -> Iterator[SampledFrame]:
    """Frames of the first video track at `limits.sample_fps` (the first frame always), decoded
    one at a time. Raises MediaRejected, possibly after some frames were yielded, for any broken
    limit, a damaged or truncated stream, or a video without frames."""
    with open_container(data, VIDEO_DEMUXERS) as container:
        if not container.streams.video:
            raise MediaRejected("The file has no video track.")
        stream = container.streams.video[0]
        if stream.codec_context is None:  # a codec FFmpeg does not know (or a mangled tag)
            raise MediaRejected("The video track is in a format we cannot decode.")
        _check_declared(container, stream, limits)
        # One decoding thread: FFmpeg's threaded VP8 decoder waited forever, using no CPU, on a
        # damaged WebM the fuzzer found (tests/fuzz_corpus/video/timeout-1c695a0d…); each
        # worker process already has a core of its own.
        stream.codec_context.thread_count = 1
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        origin = _seconds(stream.start_time, stream.time_base) or 0.0
        step = 1.0 / limits.sample_fps
        next_time = -math.inf
        decoded, last_time = 0, None
        try:
            for frame in container.decode(stream):
                decoded += 1
                if decoded > limits.max_frames:
                    raise MediaRejected(
                        "The video has more than %(limit)s frames (the limit); send a shorter "
                        "clip.",
                        limit=f"{limits.max_frames:,}",
                    )
                if frame.width * frame.height > limits.max_pixels:
                    raise MediaRejected(
                        "The video has a %(width)d×%(height)d frame; the limit is %(limit)s "
                        "pixels per frame.",
                        width=frame.width,
                        height=frame.height,
                        limit=f"{limits.max_pixels:,}",
                    )
                time = frame.time - origin if frame.time is not None else (decoded - 1) / rate
                if time > limits.max_seconds:
                    raise MediaRejected(
                        "The video runs past %(limit)s seconds (the limit).",
                        limit=f"{limits.max_seconds:g}",
                    )
                last_time = time if last_time is None else max(last_time, time)
                if time + 1e-6 >= next_time:
                    yield SampledFrame(time, _upright(frame))
                    next_time = (math.floor(time / step + 1e-6) + 1) * step
        except _DECODE_ERRORS as exc:
            raise MediaRejected(
                "The video is damaged or truncated and cannot be decoded (%(reason)s).",
                reason=str(exc),
            ) from None
        if decoded == 0:
            raise MediaRejected("The video contains no frames.")
        _check_complete(container, stream, last_time or 0.0, rate)


def _check_complete(container, stream, last_time: float, rate: float) -> None:
    """A stream that ends well before its declared end lost its tail (a cut upload)."""
    declared = _seconds(stream.duration, stream.time_base)
    if declared is None and container.duration and len(container.streams) == 1:
        # The container's duration is its longest track's: only the video's when alone.
        declared = container.duration / av.time_base
    if declared is None:
        return
    reached = last_time + min(1.0 / rate, 1.0)
    if reached < declared - max(1.0, 0.1 * declared):
        raise MediaRejected(
            "The video stops at %(reached).1f s of its declared %(declared).1f s: it is truncated.",
            reached=reached,
            declared=declared,
        )
