"""Test videos written by PyAV itself from real photos (no ffmpeg binary needed), and the corpus
of bad videos built from them."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np
from PIL import Image


def encode(
    frames: Iterable[np.ndarray], fmt: str = "mp4", codec: str = "mpeg4", fps: int = 4
) -> bytes:
    """RGB frames (all one size, even sides) as a video file in memory."""
    out = io.BytesIO()
    with av.open(out, "w", format=fmt) as container:
        stream = None
        for rgb in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=fps)
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.bit_rate = 4_000_000
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return out.getvalue()


def fit(photo: Path, width: int, height: int) -> np.ndarray:
    """The photo scaled to fit (width, height), centred on black."""
    img = Image.open(photo).convert("RGB")
    scale = min(width / img.width, height / img.height)
    img = img.resize((round(img.width * scale), round(img.height * scale)))
    canvas = Image.new("RGB", (width, height))
    canvas.paste(img, ((width - img.width) // 2, (height - img.height) // 2))
    return np.asarray(canvas)


def side_by_side(left: Path, right: Path, frames: int, height: int = 400) -> list[np.ndarray]:
    """`frames` frames showing two people, each frame shifted a little as if filmed."""
    pair = np.hstack([fit(left, 320, height), fit(right, 320, height)])
    return [np.roll(pair, shift=3 * k, axis=1) for k in range(frames)]


def one_person(photo: Path, frames: int) -> list[np.ndarray]:
    still = fit(photo, 480, 400)
    return [np.roll(still, shift=2 * k, axis=0) for k in range(frames)]


def blank(frames: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    return [np.full((height, width, 3), 16 * k % 256, np.uint8) for k in range(frames)]


def no_frames_video() -> bytes:
    """A Matroska file whose only video track never received a frame."""
    out = io.BytesIO()
    with av.open(out, "w", format="matroska") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    return out.getvalue()


def patch_avi_length(avi: bytes, frames: int) -> bytes:
    """An AVI whose video stream header claims `frames` frames (dwLength)."""
    data = bytearray(avi)
    at = data.find(b"strh") + 8 + 32
    data[at : at + 4] = struct.pack("<I", frames)
    return bytes(data)


def patch_matroska_duration(mkv: bytes, seconds: float) -> bytes:
    """A Matroska file whose segment info claims to last `seconds` (Duration, in milliseconds)."""
    data = bytearray(mkv)
    at = data.find(b"\x44\x89\x88")  # Duration element, an 8-byte float
    assert at > 0
    data[at + 3 : at + 11] = struct.pack(">d", seconds * 1000)
    return bytes(data)


_MOV_PARENTS = (b"moov", b"trak", b"mdia", b"minf", b"dinf")


def _mov_boxes(data: bytes, start: int, end: int) -> Iterable[tuple[int, int, bytes]]:
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size < 8:
            raise ValueError("not a box")
        yield at, size, kind
        at += size


def _alias_dref(path: str) -> bytes:
    """A `dref` box with one Mac alias record (`alis`) whose absolute path (type 2) is `path`:
    the form FFmpeg's MOV demuxer follows when `enable_drefs` is on."""
    name = path.encode()
    record = bytearray(150)  # volume, file name, levels: all empty
    record += struct.pack(">hH", 2, len(name)) + name + b"\0" * (len(name) % 2)
    record += struct.pack(">hH", -1, 0)
    entry = struct.pack(">I4sI", 12 + len(record), b"alis", 0) + bytes(record)
    body = struct.pack(">II", 0, 1) + entry
    return struct.pack(">I4s", 8 + len(body), b"dref") + body


def with_data_reference(mov: bytes, path: str) -> bytes:
    """A MOV/MP4 (PyAV's, `mdat` before `moov`) whose track's samples live in the external file
    `path` (a data reference), its own media data zeroed: only the external file holds frames."""

    def rewrite(start: int, end: int) -> bytes:
        out = bytearray()
        for at, size, kind in _mov_boxes(mov, start, end):
            if kind == b"dref":
                out += _alias_dref(path)
            elif kind in _MOV_PARENTS:
                inner = rewrite(at + 8, at + size)
                out += struct.pack(">I4s", 8 + len(inner), kind) + inner
            elif kind == b"mdat":
                out += mov[at : at + 8] + bytes(size - 8)
            else:
                out += mov[at : at + size]
        return bytes(out)

    return rewrite(0, len(mov))
