"""The face encoder sits behind `FaceEmbedder`, chosen by name: dlib today, one place to add
another."""

from __future__ import annotations

import sys

import pytest

from consent_service.biometrics.faces import FACE_MODEL, DlibFaceEmbedder, face_embedder
from consent_service.settings import Settings


def test_the_setting_names_the_dlib_encoder_with_the_detection_settings():
    settings = Settings(face_detect_max_side=800, face_min_size=60)
    embedder = face_embedder(settings.face_model, 800, 60)
    assert isinstance(embedder, DlibFaceEmbedder)
    assert (embedder.detect_max_side, embedder.min_size) == (800, 60)
    assert embedder.model_name == FACE_MODEL


def test_choosing_the_encoder_loads_no_model():
    # Building the embedder must not import dlib: the web process never loads it.
    had = "face_recognition" in sys.modules
    face_embedder("dlib", 1024, 40)
    assert ("face_recognition" in sys.modules) == had


def test_an_unknown_model_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown face model 'arcface'; known: dlib"):
        face_embedder("arcface", 1024, 40)
