"""What an upload is, from its first bytes: never from its name or the client's content type.
The signatures live here once: the kind and demuxer for the gate's media, the MIME type for a
complaint's evidence."""

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

# Image signatures and their MIME types (WebP, a RIFF form, is told apart by its form type).
_IMAGE_TYPES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),  # little-endian
    (b"MM\x00*", "image/tiff"),  # big-endian
)
_IMAGE_MAGIC = tuple(magic for magic, _ in _IMAGE_TYPES)
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


# The MIME type of each accepted container, by its demuxer (MP4/MOV by its brand, below).
# Matroska is answered as WebM, the subset browsers record, as evidence has always been labelled.
_CONTAINER_TYPES = {
    "matroska": "video/webm",
    "avi": "video/x-msvideo",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "mp3": "audio/mpeg",
}


def media_type(data: bytes) -> str | None:
    """The MIME type of a file from its signature: every image, audio and video container
    `sniff` recognises, and PDF; None for anything else (playlists included)."""
    head = data[:16]
    for magic, mime in _IMAGE_TYPES:
        if head.startswith(magic):
            return mime
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    fmt = container_format(data)
    if fmt == "mov":
        if head[4:8] != b"ftyp":
            return "video/quicktime"  # an old QuickTime file opening with another box
        brand = head[8:12]
        if brand == b"qt  ":
            return "video/quicktime"
        if brand.startswith(b"M4A"):
            return "audio/mp4"
        return "video/mp4"
    return _CONTAINER_TYPES.get(fmt) if fmt else None
