"""Safe image decoding: known formats only, size limits, EXIF orientation, readable errors."""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from consent_service.errors import MediaRejected

# Never EPS/PS (Ghostscript) or other exotic decoders: only what cameras and browsers produce.
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """RGB pixels of an uploaded image, upright; MediaRejected with a reason otherwise."""
    if not data:
        raise MediaRejected("The file is empty.")
    # face_recognition switches this on for the whole process when it is imported; a truncated
    # upload must be rejected, not silently padded with grey.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = img.size
            if width * height > max_pixels:
                raise MediaRejected(
                    "The image is %(width)d×%(height)d pixels; the limit is %(limit)s pixels.",
                    width=width,
                    height=height,
                    limit=f"{max_pixels:,}",
                )
            if width < 16 or height < 16:
                raise MediaRejected(
                    "The image is only %(width)d×%(height)d pixels: too small for a face.",
                    width=width,
                    height=height,
                )
            img.load()
            upright = ImageOps.exif_transpose(img)
            return np.asarray(upright.convert("RGB"))
    except MediaRejected:
        raise
    except UnidentifiedImageError:
        raise MediaRejected(
            "The file is not an image we can read (JPEG, PNG, WebP, BMP, GIF or TIFF)."
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaRejected("The image is too large to decode safely.") from None
    # Pillow's parsers raise more than OSError on hostile files (a TIFF whose strip offsets are
    # rationals raises TypeError); every one of them is a damaged upload, not a crash.
    except (
        OSError,
        SyntaxError,
        ValueError,
        TypeError,
        EOFError,
        IndexError,
        KeyError,
        struct.error,
    ) as exc:
        raise MediaRejected(
            "The image is damaged or truncated and cannot be decoded (%(reason)s).",
            reason=str(exc),
        ) from None
