"""Sniffing: what an upload is, from its bytes alone."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from consent_service.media.sniff import MediaKind, container_format, sniff
from tests import videos


def image(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_images_are_images(fmt):
    assert sniff(image(fmt)) is MediaKind.IMAGE


@pytest.mark.parametrize(
    ("fmt", "codec", "demuxer"),
    [
        ("mp4", "mpeg4", "mov"),
        ("mov", "mpeg4", "mov"),
        ("matroska", "mpeg4", "matroska"),
        ("webm", "libvpx", "matroska"),
        ("avi", "mpeg4", "avi"),
    ],
)
def test_video_containers_name_their_demuxer(fmt, codec, demuxer):
    data = videos.encode(videos.blank(2), fmt=fmt, codec=codec)
    assert sniff(data) is MediaKind.VIDEO
    assert container_format(data) == demuxer


@pytest.mark.parametrize(
    "data",
    [
        b"#EXTM3U\n#EXTINF:10,\nhttp://example.com/a.ts\n",
        b"\xef\xbb\xbf#EXTM3U\n",
        b"ffconcat version 1.0\nfile '/etc/passwd'\n",
        b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\n",
    ],
    ids=["hls", "hls-bom", "ffconcat", "sdp"],
)
def test_playlists_are_recognised_as_such(data):
    assert sniff(data) is MediaKind.PLAYLIST
    assert container_format(data) is None


@pytest.mark.parametrize(
    "data", [b"RIFF\x00\x00\x00\x00WAVEfmt ", b"fLaC\x00\x00", b"OggS\x00\x02", b"ID3\x04\x00"]
)
def test_audio_files_are_audio(data):
    assert sniff(data) is MediaKind.AUDIO


@pytest.mark.parametrize("data", [b"", b"hello world", b"%PDF-1.7\n", b"\x00" * 64])
def test_anything_else_is_unknown(data):
    assert sniff(data) is None
