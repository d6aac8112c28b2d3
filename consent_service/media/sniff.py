"""What an upload is, from its first bytes: never from its name or the client's content type."""

from __future__ import annotations

from enum import StrEnum


class MediaKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"  # a container that usually holds video (it may turn out to hold audio only)
    AUDIO = "audio"
    PLAYLIST = "playlist"  # HLS, ffconcat, SDP…: names other files or URLs; always refused


# FFmpeg demuxer for each container we accept, by its signature. Only these demuxers are ever
# used: probing is never left to FFmpeg, which would happily pick hls or concat.
VIDEO_DEMUXERS = ("mov", "matroska", "avi")
AUDIO_DEMUXERS = ("wav", "flac", "ogg", "mp3")

_IMAGE_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)
# ISO base media boxes that may open an MP4/MOV file.
_MOV_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
_PLAYLIST_MARKERS = (b"#EXTM3U", b"ffconcat", b"v=0", b"[playlist]", b"<?xml", b"<smil", b"<MPD")


def container_format(data: bytes) -> str | None:
    """The FFmpeg demuxer for an accepted audio or video container, else None."""
    head = data[:16]
    if len(head) >= 8 and head[4:8] in _MOV_BOXES:
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska and WebM
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def sniff(data: bytes) -> MediaKind | None:
    """The kind of an upload from its signature; None when it is nothing we recognise."""
    head = data[:64]
    if head.startswith(_IMAGE_MAGIC) or (head.startswith(b"RIFF") and head[8:12] == b"WEBP"):
        return MediaKind.IMAGE
    fmt = container_format(data)
    if fmt in VIDEO_DEMUXERS:
        return MediaKind.VIDEO
    if fmt in AUDIO_DEMUXERS:
        return MediaKind.AUDIO
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(_PLAYLIST_MARKERS):
        return MediaKind.PLAYLIST
    return None
