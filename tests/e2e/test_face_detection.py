"""Face detection with the real dlib model and the real proposer network (no worker; here because
the fast loop loads no face model): FACE_DETECTOR=proposed finds the faces HOG's whole scan finds,
with encodings of the same people, a small face beside a large one included, and a photo the
network misses is still scanned."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from consent_service.biometrics.face_proposals import proposed_faces
from consent_service.biometrics.faces import DlibFaceEmbedder, hog_detector
from consent_service.biometrics.images import decode_image
from consent_service.settings import Settings

MAX_PIXELS = 40_000_000


@pytest.fixture(scope="module")
def proposed() -> DlibFaceEmbedder:
    return DlibFaceEmbedder(proposer_model=Settings().face_proposer_model)


@pytest.fixture(scope="module")
def whole_scan() -> DlibFaceEmbedder:
    return DlibFaceEmbedder(proposer_model=None)


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
    """Each face of `a` has one face of `b` at about the same place (HOG's box at a scale a few
    pixels apart), of the same person."""
    assert len(a) == len(b)
    for face in a:
        other = max(b, key=lambda f: _overlap(f.box, face.box))
        assert _overlap(other.box, face.box) > 0.6
        assert np.linalg.norm(other.embedding - face.embedding) < 0.15


@pytest.mark.parametrize("name", ["t1.jpg", "obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"])
def test_proposals_find_the_people_the_whole_scan_finds(photos, proposed, whole_scan, name):
    rgb = _rgb(photos[name])
    found = proposed.detect(rgb)
    assert found
    _same_people(found, whole_scan.detect(rgb))


def test_a_small_face_beside_a_large_one_is_found(photos, proposed, whole_scan):
    """biden.jpg's face pasted at about 48 px of the 1024 px copy beside obama.jpg's (about
    220 px): both found, as the whole scan finds them."""
    base = Image.open(photos["obama.jpg"]).convert("RGB")
    base = base.resize((1024 * base.width // base.height, 1024))
    (top, right, bottom, left), *_ = whole_scan.boxes(_rgb(photos["biden.jpg"]), 1024)
    margin = (right - left) // 2
    donor = Image.open(photos["biden.jpg"]).convert("RGB")
    donor = donor.crop((left - margin, top - margin, right + margin, bottom + margin))
    donor = donor.resize((96, 96 * donor.height // donor.width))
    base.paste(donor, (40, base.height - donor.height - 40))
    rgb = np.asarray(base)
    found = proposed.detect(rgb)
    assert len(found) == 2
    _same_people(found, whole_scan.detect(rgb))


def test_a_face_filling_the_frame_is_found(photos, proposed, whole_scan):
    """obama2.jpg cropped to its face box and tripled: no room around the face."""
    rgb = _rgb(photos["obama2.jpg"])
    (top, right, bottom, left), *_ = whole_scan.boxes(rgb, 1024)
    crop = Image.fromarray(rgb[top:bottom, left:right])
    rgb = np.asarray(crop.resize((crop.width * 3, crop.height * 3)))
    found = proposed.detect(rgb)
    assert len(found) == 1
    _same_people(found, whole_scan.detect(rgb))


class Blind:
    """A proposer that sees nothing: what HOG finds on its own where the network misses."""

    def propose(self, rgb):
        return []


def test_where_the_network_proposes_nothing_hog_scans_a_small_copy(photos):
    rgb = _rgb(photos["obama.jpg"])
    copy = np.asarray(Image.fromarray(rgb).resize((rgb.shape[1] // 2, rgb.shape[0] // 2)))
    (face,) = proposed_faces(Blind(), hog_detector(), copy)
    assert face.width > 80
    assert proposed_faces(Blind(), hog_detector(), np.full((600, 800, 3), 128, np.uint8)) == []


def test_missing_weights_fall_back_to_the_whole_scan_and_say_so(
    photos, whole_scan, tmp_path, caplog
):
    embedder = DlibFaceEmbedder(proposer_model=tmp_path / "nowhere.onnx")
    rgb = _rgb(photos["obama3.jpg"])
    with caplog.at_level(logging.WARNING):
        found = embedder.detect(rgb)
    assert "face proposer weights not found at" in caplog.text
    assert "FACE_DETECTOR=hog" in caplog.text
    assert [f.box for f in found] == [f.box for f in whole_scan.detect(rgb)]
    assert embedder.proposer_model is None  # said once, not on every photo
