"""Sniffing: what an upload is, from its bytes alone."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from consent_service.media.sniff import MediaKind, container_format, media_type, sniff
from tests import videos


def image(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_images_are_images(fmt):
    assert sniff(image(fmt)) is MediaKind.IMAGE


@pytest.mark.parametrize(
    ("fmt", "codec", "demuxer", "mime"),
    [
        ("mp4", "mpeg4", "mov", "video/mp4"),
        ("mov", "mpeg4", "mov", "video/quicktime"),
        ("matroska", "mpeg4", "matroska", "video/webm"),
        ("webm", "libvpx", "matroska", "video/webm"),
        ("avi", "mpeg4", "avi", "video/x-msvideo"),
    ],
)
def test_video_containers_name_their_demuxer_and_mime_type(fmt, codec, demuxer, mime):
    data = videos.encode(videos.blank(2), fmt=fmt, codec=codec)
    assert sniff(data) is MediaKind.VIDEO
    assert container_format(data) == demuxer
    assert media_type(data) == mime


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


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("GIF", "image/gif"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
        ("PDF", "application/pdf"),
    ],
)
def test_images_and_pdf_have_their_mime_type(fmt, mime):
    assert media_type(image(fmt)) == mime


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"fLaC\x00\x00", "audio/flac"),
        (b"OggS\x00\x02", "audio/ogg"),
        (b"ID3\x04\x00", "audio/mpeg"),
        (b"\xff\xfb\x90\x00", "audio/mpeg"),  # an MPEG frame without a tag
        (b"\x00\x00\x00\x20ftypM4A \x00\x00", "audio/mp4"),
        (b"\x00\x00\x00\x08wide\x00\x00", "video/quicktime"),  # old QuickTime, no ftyp
    ],
)
def test_audio_and_brands_have_their_mime_type(data, mime):
    assert media_type(data) == mime


@pytest.mark.parametrize("data", [b"", b"hello world", b"MZ\x90\x00", b"#EXTM3U\n", b"\x00" * 64])
def test_anything_else_has_no_mime_type(data):
    assert media_type(data) is None
