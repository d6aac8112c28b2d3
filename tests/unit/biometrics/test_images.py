"""decode_image against a corpus of bad uploads built here in code (RELIABILITY.md, "Bad input").

Every rejection is a MediaRejected whose message a person can act on.
"""

from __future__ import annotations

import io
import random
import struct
import time
import warnings
import zlib

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image, ImageFile

from consent_service.biometrics.images import decode_image
from consent_service.errors import MediaRejected

LIMIT = 40_000_000


def encode(pixels: np.ndarray, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **options)
    return out.getvalue()


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A valid, tiny PNG whose IHDR declares the given size (the pixels are never there)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )


EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n"
    b"%%BoundingBox: 0 0 120 120\n"
    b"%%EndComments\n"
    b"newpath 10 10 moveto 110 110 lineto stroke\n"
    b"showpage\n"
    b"%%EOF\n"
)

POSTSCRIPT = [
    pytest.param(EPS, id="eps"),
    pytest.param(b"%!PS-Adobe-3.0\n%%BoundingBox: 0 0 120 120\nshowpage\n", id="ps"),
    # The DOS EPS binary header in front of the PostScript.
    pytest.param(
        b"\xc5\xd0\xd3\xc6" + struct.pack("<IIIIIIH", 30, len(EPS), 0, 0, 0, 0, 0xFFFF) + EPS,
        id="dos-eps",
    ),
]


def rejection(data: bytes, max_pixels: int = LIMIT) -> str:
    with pytest.raises(MediaRejected) as caught:
        decode_image(data, max_pixels)
    message = str(caught.value)
    assert message.endswith("."), message  # a sentence, not an exception repr
    return message


class TestAccepted:
    @pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
    def test_each_supported_format_decodes_to_rgb(self, fmt):
        pixels = decode_image(encode(noise(48, 64), fmt), LIMIT)
        assert pixels.shape == (48, 64, 3)
        assert pixels.dtype == np.uint8

    def test_lossless_pixels_come_back_unchanged(self):
        original = noise(20, 30)
        assert np.array_equal(decode_image(encode(original, "PNG"), LIMIT), original)

    def test_grey_and_transparent_images_become_rgb(self):
        grey = Image.fromarray(noise(20, 20)[..., 0])
        rgba = Image.fromarray(np.dstack([noise(20, 20), np.full((20, 20), 128, np.uint8)]))
        for img in (grey, rgba):
            out = io.BytesIO()
            img.save(out, "PNG")
            assert decode_image(out.getvalue(), LIMIT).shape == (20, 20, 3)

    @pytest.mark.parametrize(
        ("orientation", "shape", "top_left_is_red"),
        [(1, (30, 60, 3), True), (3, (30, 60, 3), False), (6, (60, 30, 3), True)],
    )
    def test_exif_orientation_is_applied(self, orientation, shape, top_left_is_red):
        # Stored 60 wide × 30 high: red left half, blue right half. Orientation 6 means "rotate
        # 90° clockwise to view", so the upright picture is 30 wide × 60 high with red on top.
        pixels = np.zeros((30, 60, 3), np.uint8)
        pixels[:, :30] = (255, 0, 0)
        pixels[:, 30:] = (0, 0, 255)
        img = Image.fromarray(pixels)
        exif = img.getexif()
        exif[0x0112] = orientation
        out = io.BytesIO()
        img.save(out, "JPEG", exif=exif, quality=95)

        upright = decode_image(out.getvalue(), LIMIT)

        assert upright.shape == shape
        red, blue = upright[2, 2], upright[-3, -3]
        if not top_left_is_red:
            red, blue = blue, red
        assert red[0] > 200 and red[2] < 50
        assert blue[2] > 200 and blue[0] < 50


class TestRejected:
    def test_zero_bytes(self):
        assert "empty" in rejection(b"")

    def test_text_file_named_like_a_jpeg(self):
        # The filename ("holiday.jpg") never reaches the decoder: only the bytes count.
        message = rejection(b"Dear provider, this is not a photo at all.\n" * 4)
        assert "not an image we can read" in message
        assert "JPEG" in message

    def test_random_bytes(self):
        data = random.Random(1234).randbytes(4096)
        assert "not an image we can read" in rejection(data)

    @pytest.mark.parametrize("library_allows_truncation", [False, True])
    @pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
    def test_truncated_image(self, monkeypatch, fmt, library_allows_truncation):
        # face_recognition sets PIL's LOAD_TRUNCATED_IMAGES for the whole process when it is
        # imported (as every worker does); a cut-off upload must be refused all the same.
        monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", library_allows_truncation)
        data = encode(noise(64, 64), fmt)
        message = rejection(data[: len(data) // 2])
        assert "damaged or truncated" in message

    def test_png_cut_inside_its_header(self):
        data = encode(noise(64, 64), "PNG")
        assert "damaged or truncated" in rejection(data[:20])

    def test_one_pixel_image(self):
        message = rejection(encode(noise(1, 1), "PNG"))
        assert "too small for a face" in message
        assert "1×1" in message

    def test_image_over_the_configured_pixel_limit(self):
        message = rejection(encode(noise(100, 100), "PNG"), max_pixels=5_000)
        assert "100×100" in message
        assert "limit is 5,000 pixels" in message

    def test_huge_dimensions_declared_in_a_small_file(self):
        data = png_header_only(50_000, 50_000)
        assert len(data) < 100
        started = time.monotonic()
        message = rejection(data)
        assert time.monotonic() - started < 2  # refused from the header, nothing allocated
        assert "too large" in message

    def test_pillows_bomb_warning_is_a_rejection_not_a_warning(self):
        # 10000×10000 is above Pillow's warning threshold and below its hard error. The caller
        # here ignores warnings, so only decode_image's own handling can refuse the bomb.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            message = rejection(png_header_only(10_000, 10_000), max_pixels=10**12)
        assert "too large to decode safely" in message

    @pytest.mark.parametrize("data", POSTSCRIPT)
    def test_postscript_is_refused_and_never_reaches_ghostscript(self, monkeypatch, data):
        calls = []
        monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: calls.append(a))
        message = rejection(data)
        assert "not an image we can read" in message
        assert calls == []

    @pytest.mark.parametrize("data", POSTSCRIPT)
    def test_postscript_corpus_is_what_pillow_would_otherwise_open(self, data):
        # Control for the test above: without the format allow-list Pillow takes these files.
        with Image.open(io.BytesIO(data)) as img:
            assert img.format == "EPS"

    def test_tiff_with_rational_strip_offsets(self):
        # Found by fuzzing: Pillow raises TypeError for it, which must not crash the worker.
        data = bytearray(encode(np.full((40, 40, 3), 128, np.uint8), "TIFF"))
        assert data[:4] == b"II*\x00"
        ifd = struct.unpack_from("<I", data, 4)[0]
        for i in range(struct.unpack_from("<H", data, ifd)[0]):
            entry = ifd + 2 + 12 * i
            if struct.unpack_from("<H", data, entry)[0] == 273:  # StripOffsets
                struct.pack_into("<H", data, entry + 2, 5)  # LONG → RATIONAL
        assert "damaged or truncated" in rejection(bytes(data))

    # Pillow warns (UserWarning) about corrupt metadata it skips; that is not a rejection.
    @pytest.mark.filterwarnings("ignore::UserWarning")
    def test_mutated_images_decode_or_are_rejected_never_crash(self):
        rng = random.Random(20261124)
        seeds = [
            encode(noise(40, 40, seed=i), fmt)
            for i, fmt in enumerate(["JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"])
        ]
        for _ in range(400):
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if rng.random() < 0.3:
                data = data[: rng.randrange(1, len(data))]
            try:
                pixels = decode_image(bytes(data), LIMIT)
            except MediaRejected as exc:
                assert str(exc)
            else:
                assert pixels.ndim == 3 and pixels.shape[2] == 3


class TestPolyglots:
    """Files that are an image and something else at once: only the image is ever read, and
    what only looks like an image (HTML behind a JPEG signature) is refused."""

    @staticmethod
    def zipped(files: dict[str, bytes]) -> bytes:
        import zipfile

        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            for name, data in files.items():
                archive.writestr(name, data)
        return out.getvalue()

    @pytest.mark.parametrize(
        "tail",
        [
            pytest.param(b"<html><script>alert(1)</script></html>", id="jpeg+html"),
            pytest.param("zip", id="jpeg+zip"),
        ],
    )
    def test_an_image_with_another_file_behind_it_decodes_as_the_image(self, tail):
        from consent_service.media.sniff import MediaKind, sniff

        jpeg = encode(noise(32, 32), "JPEG", quality=90)
        if tail == "zip":
            tail = self.zipped({"index.html": b"<script>alert(1)</script>"})
        polyglot = jpeg + tail
        assert sniff(polyglot) is MediaKind.IMAGE
        assert np.array_equal(decode_image(polyglot, LIMIT), decode_image(jpeg, LIMIT))

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(b"\xff\xd8\xff\xe0<html><script>alert(1)</script></html>", id="html"),
            pytest.param(b"GIF89a/*\x00\x00*/=alert(1)//;", id="gif-javascript"),
        ],
    )
    def test_markup_behind_an_image_signature_is_refused(self, data):
        assert "damaged or truncated" in rejection(data) or "not an image" in rejection(data)

    def test_a_zip_with_an_image_inside_is_not_an_image(self):
        data = self.zipped({"face.jpg": encode(noise(32, 32), "JPEG")})
        assert "not an image we can read" in rejection(data)
