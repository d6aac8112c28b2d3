"""Face detection with the real dlib model (no worker; here because the fast loop loads no face
model): with FACE_DETECT_FIRST_SIDE, a first look on a small copy, the larger scan only where
that finds nobody, and the same people found as scanning the larger copy alone."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from consent_service.biometrics.faces import DlibFaceEmbedder
from consent_service.biometrics.images import decode_image

MAX_PIXELS = 40_000_000


@pytest.fixture(scope="module")
def two_step() -> DlibFaceEmbedder:
    return DlibFaceEmbedder(detect_max_side=1024, detect_first_side=512)


@pytest.fixture(scope="module")
def large_only() -> DlibFaceEmbedder:
    return DlibFaceEmbedder(detect_max_side=1024, detect_first_side=None)


def _rgb(path) -> np.ndarray:
    return decode_image(path.read_bytes(), MAX_PIXELS)


def _overlap(a, b) -> float:
    """Intersection over union of two (top, right, bottom, left) boxes."""
    height = min(a[2], b[2]) - max(a[0], b[0])
    width = min(a[1], b[1]) - max(a[3], b[3])
    inter = max(0, height) * max(0, width)

    def area(box):
        return (box[2] - box[0]) * (box[1] - box[3])

    return inter / (area(a) + area(b) - inter)


def _same_people(a, b) -> None:
    """Each face of `a` has one face of `b` at about the same place (the boxes of two scales
    differ by a few of the smaller scan's pixels), of the same person."""
    assert len(a) == len(b)
    for face in a:
        other = max(b, key=lambda f: _overlap(f.box, face.box))
        assert _overlap(other.box, face.box) > 0.6
        assert np.linalg.norm(other.embedding - face.embedding) < 0.15


@pytest.mark.parametrize("name", ["t1.jpg", "obama3.jpg", "biden.jpg"])
def test_the_first_look_finds_the_people_the_larger_scan_finds(photos, two_step, large_only, name):
    rgb = _rgb(photos[name])
    found = two_step.detect(rgb)
    assert found
    _same_people(found, large_only.detect(rgb))


def test_a_photo_whose_only_face_is_small_is_scanned_again_larger(photos, two_step, large_only):
    """A face about 100 px wide on a 2048 px canvas: too small on the 512 px copy, found on the
    1024 px one."""
    face = Image.open(photos["obama2.jpg"]).convert("RGB")
    face = face.resize((face.width // 5, face.height // 5))
    canvas = Image.new("RGB", (2048, 2048), (128, 128, 128))
    canvas.paste(face, (900, 900))
    rgb = np.asarray(canvas)
    assert DlibFaceEmbedder(detect_max_side=512, detect_first_side=None).detect(rgb) == []
    found = two_step.detect(rgb)
    assert len(found) == 1
    _same_people(found, large_only.detect(rgb))
