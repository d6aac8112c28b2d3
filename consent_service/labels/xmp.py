"""GB 45438-2025's implicit label as XMP: the `AIGC` JSON object in the TC260 namespace
(`TC260:AIGC`), written into a JPEG's APP1 segment or a PNG's `iTXt` chunk and read back. Pure
bytes in, bytes out; no image is decoded or re-encoded."""

from __future__ import annotations

import json
import re
import struct
import zlib
from html import escape, unescape
from typing import Any

TC260_NS = "http://www.tc260.org.cn/ns/AIGC/1.0/"
JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A JPEG segment's length field counts itself: at most 65535 bytes, header included.
_JPEG_MAX_PAYLOAD = 0xFFFF - 2
_AIGC = re.compile(r"<TC260:AIGC>(.*?)</TC260:AIGC>", re.DOTALL)
_AIGC_ATTR = re.compile(r"""TC260:AIGC=(["'])(.*?)\1""", re.DOTALL)


class XmpError(ValueError):
    """A file this module cannot put an XMP packet into (not a JPEG or PNG it can parse, or a
    packet too large for one JPEG segment)."""


def packet(aigc: dict[str, Any]) -> bytes:
    """An XMP packet holding `TC260:AIGC`, the label's JSON (compact, UTF-8) as its value."""
    value = escape(json.dumps(aigc, ensure_ascii=False, separators=(",", ":")), quote=False)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:TC260="{TC260_NS}">'
        f"<TC260:AIGC>{value}</TC260:AIGC>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def aigc_of_packet(xmp: bytes) -> dict[str, Any] | None:
    """The `AIGC` object a packet carries (element or attribute form), or None."""
    text = xmp.decode("utf-8", errors="replace")
    if TC260_NS not in text:
        return None
    found = _AIGC.search(text)
    raw = found.group(1) if found else None
    if raw is None:
        attr = _AIGC_ATTR.search(text)
        raw = attr.group(2) if attr else None
    if raw is None:
        return None
    try:
        value = json.loads(unescape(raw.strip()))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def embed(data: bytes, aigc: dict[str, Any]) -> bytes:
    """`data` (a JPEG or PNG) with its XMP packet replaced by one holding the label. Other XMP
    the file had is dropped: this service writes the label, and the C2PA manifest that follows
    records the file as it then is."""
    if data.startswith(b"\xff\xd8"):
        return _jpeg_embed(data, packet(aigc))
    if data.startswith(PNG_SIGNATURE):
        return _png_embed(data, packet(aigc))
    raise XmpError("not a JPEG or PNG image")


def read(data: bytes) -> dict[str, Any] | None:
    """The `AIGC` object in a JPEG's or PNG's XMP, or None."""
    if data.startswith(b"\xff\xd8"):
        packets = [p for marker, p in _jpeg_segments(data) if _is_jpeg_xmp(marker, p)]
        payloads = [p[len(JPEG_XMP_HEADER) :] for p in packets]
    elif data.startswith(PNG_SIGNATURE):
        payloads = [x for x in (_itxt_xmp(c) for t, c in _png_chunks(data) if t == b"iTXt") if x]
    else:
        return None
    for payload in payloads:
        found = aigc_of_packet(payload)
        if found is not None:
            return found
    return None


def _jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of each segment before the image data (start of scan)."""
    segments, i = [], 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xDA:  # start of scan: the rest is entropy-coded image data
            break
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if length < 2 or i + 2 + length > len(data):
            raise XmpError("a JPEG segment runs past the end of the file")
        segments.append((marker, data[i + 4 : i + 2 + length]))
        i += 2 + length
    return segments


def _is_jpeg_xmp(marker: int, payload: bytes) -> bool:
    return marker == 0xE1 and payload.startswith(JPEG_XMP_HEADER)


def _jpeg_embed(data: bytes, xmp: bytes) -> bytes:
    payload = JPEG_XMP_HEADER + xmp
    if len(payload) > _JPEG_MAX_PAYLOAD:
        raise XmpError("the label's XMP packet does not fit one JPEG segment")
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    out, i, placed = [data[:2]], 2, False
    while i + 4 <= len(data) and data[i] == 0xFF and data[i + 1] != 0xDA:
        marker = data[i + 1]
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if length < 2 or i + 2 + length > len(data):
            raise XmpError("a JPEG segment runs past the end of the file")
        whole = data[i : i + 2 + length]
        if not placed and marker not in (0xE0, 0xE1):
            out.append(segment)  # after JFIF/Exif (APP0/APP1), before the rest, as is usual
            placed = True
        if not _is_jpeg_xmp(marker, whole[4:]):
            out.append(whole)
        i += 2 + length
    if not placed:
        out.append(segment)
    out.append(data[i:])
    return b"".join(out)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, i = [], len(PNG_SIGNATURE)
    while i + 12 <= len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        kind = data[i + 4 : i + 8]
        if i + 12 + length > len(data):
            raise XmpError("a PNG chunk runs past the end of the file")
        chunks.append((kind, data[i + 8 : i + 8 + length]))
        i += 12 + length
        if kind == b"IEND":
            break
    return chunks


def _itxt_xmp(content: bytes) -> bytes | None:
    """The XMP text of an `iTXt` chunk whose keyword is XMP's (uncompressed, as XMP asks)."""
    keyword, sep, rest = content.partition(b"\x00")
    if keyword != PNG_XMP_KEYWORD or not sep or len(rest) < 2:
        return None
    compressed, text = rest[0], rest[2:]
    _language, _, text = text.partition(b"\x00")
    _translated, _, text = text.partition(b"\x00")
    return zlib.decompress(text) if compressed else text


def _png_chunk(kind: bytes, content: bytes) -> bytes:
    crc = zlib.crc32(kind + content) & 0xFFFFFFFF
    return struct.pack(">I", len(content)) + kind + content + struct.pack(">I", crc)


def _png_embed(data: bytes, xmp: bytes) -> bytes:
    chunks = _png_chunks(data)
    if not chunks or chunks[0][0] != b"IHDR":
        raise XmpError("a PNG without its header chunk")
    itxt = _png_chunk(b"iTXt", PNG_XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + xmp)
    out = [PNG_SIGNATURE]
    for index, (kind, content) in enumerate(chunks):
        if kind == b"iTXt" and _itxt_xmp(content) is not None:
            continue
        out.append(_png_chunk(kind, content))
        if index == 0:
            out.append(itxt)  # right after IHDR, before the image data
    return b"".join(out)
