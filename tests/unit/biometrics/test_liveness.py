"""Live enrollment logic: the yaw from 5-point landmarks, the turn check, and the challenge's
rules (one subject, single use, expiring); the face model itself is exercised end to end."""

from __future__ import annotations

import io
import secrets
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image

from consent_service.biometrics import liveness
from consent_service.biometrics.faces import DetectedFace
from consent_service.biometrics.service import FaceMatching
from consent_service.crypto import Envelope
from consent_service.errors import EnrollmentRejected
from consent_service.storage import LocalMediaStore


def landmarks(nose_x: float, tilt: float = 0.0) -> dict:
    """Eye corners 100 px apart around (200, 200), the nose below; rotated by `tilt` radians."""
    points = {
        "left_eye": [(130.0, 200.0), (170.0, 200.0)],
        "right_eye": [(230.0, 200.0), (270.0, 200.0)],
        "nose_tip": [(200.0 + nose_x, 260.0)],
    }
    c, s = np.cos(tilt), np.sin(tilt)

    def turn(p):
        x, y = p[0] - 200, p[1] - 200
        return (200 + c * x - s * y, 200 + s * x + c * y)

    return {k: [turn(p) for p in v] for k, v in points.items()}


def test_yaw_is_the_nose_shift_in_eye_distances_whatever_the_tilt():
    assert liveness.yaw(landmarks(0)) == pytest.approx(0)
    assert liveness.yaw(landmarks(25)) == pytest.approx(0.25)  # towards the picture's right
    assert liveness.yaw(landmarks(-25)) == pytest.approx(-0.25)
    assert liveness.yaw(landmarks(25, tilt=0.3)) == pytest.approx(0.25)


def test_turns_must_move_the_nose_the_asked_way_from_straight_ahead():
    liveness.check_turns(["front", "left", "right"], [0.05, 0.2, -0.1], 0.12)
    liveness.check_turns(["front", "right", "left"], [-0.1, -0.3, 0.05], 0.12)
    with pytest.raises(EnrollmentRejected, match="did not turn to the left"):
        liveness.check_turns(["front", "left", "right"], [0.0, 0.0, -0.2], 0.12)
    with pytest.raises(EnrollmentRejected, match="did not turn to the right"):
        liveness.check_turns(["front", "left", "right"], [0.0, 0.2, 0.2], 0.12)  # wrong way


def test_steps_start_straight_ahead_and_ask_both_turns_in_random_order():
    seen = {tuple(liveness.new_steps()) for _ in range(64)}
    assert seen == {("front", "left", "right"), ("front", "right", "left")}


class Faces:
    """One face per picture, its embedding and nose position read from the picture's colour."""

    model_name = "test"

    def detect(self, rgb):
        red, green = int(rgb[0, 0, 0]), int(rgb[0, 0, 1])
        embedding = np.full(128, green / 255 / 10)
        return [DetectedFace((0, 32, 32, 0), embedding)] if red else []


def picture(nose: int, person: int = 0) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (nose, person, 0)).save(out, "PNG")
    return out.getvalue()


def read_nose(rgb, box):
    return landmarks(int(rgb[0, 0, 0]) - 100)


@pytest.fixture
def matching():
    return FaceMatching(Faces(), gallery=None, tolerance=0.5, margin=0.06, max_pixels=10_000)


def test_one_person_turning_as_asked_gives_one_embedding_per_picture(matching):
    frames = [picture(100), picture(130), picture(70)]  # yaw 0, +0.3, -0.3
    steps = ["front", "left", "right"]
    assert len(liveness.live_faces(matching, steps, 0.12, frames, read_nose)) == 3
    with pytest.raises(EnrollmentRejected, match="did not turn to the right"):
        liveness.live_faces(matching, ["front", "right", "left"], 0.12, frames, read_nose)
    with pytest.raises(EnrollmentRejected, match="same person"):
        liveness.live_faces(
            matching, steps, 0.12, [picture(100), picture(130, 255), picture(70)], read_nose
        )
    with pytest.raises(EnrollmentRejected, match="No face was found in the picture taken"):
        liveness.live_faces(matching, steps, 0.12, [picture(100), picture(0), picture(70)])
    with pytest.raises(EnrollmentRejected, match="Expected 3 camera pictures"):
        liveness.live_faces(matching, steps, 0.12, frames[:2], read_nose)


@pytest.fixture
def store(tmp_path):
    return LocalMediaStore(tmp_path, Envelope(secrets.token_bytes(32)))


def test_a_challenge_is_the_subjects_own_used_once_and_expires(session, make_subject, store):
    me, other = make_subject(), make_subject()
    frames = [b"1", b"2", b"3"]
    voided = liveness.issue_challenge(session, me.id, 300)
    challenge = liveness.issue_challenge(session, me.id, 300)
    assert session.get(liveness.LiveChallenge, voided.id) is None  # a new page voids the old
    with pytest.raises(EnrollmentRejected, match="not known"):
        liveness.start_live_enrollment(session, store, other.id, challenge.id, frames)
    with pytest.raises(EnrollmentRejected, match="Expected 3"):
        liveness.start_live_enrollment(session, store, me.id, challenge.id, frames[:2])
    enrollment = liveness.start_live_enrollment(session, store, me.id, challenge.id, frames)
    assert [store.get(k) for k in enrollment.media_keys] == frames
    assert challenge.enrollment_id == enrollment.id and challenge.used_at is not None
    with pytest.raises(EnrollmentRejected, match="already used"):
        liveness.start_live_enrollment(session, store, me.id, challenge.id, frames)

    late = liveness.issue_challenge(session, me.id, 300)
    late.expires_at -= timedelta(seconds=301)
    session.flush()
    with pytest.raises(EnrollmentRejected, match="expired"):
        liveness.start_live_enrollment(session, store, me.id, late.id, frames)


def test_uploads_are_off_in_production_unless_the_operator_turns_them_on(tmp_path):
    from consent_service.settings import Settings

    def settings(**kw):
        return Settings(consent_service_home=tmp_path, **kw)

    assert settings().uploaded_enrollment_allowed
    assert not settings(consent_service_env="production").uploaded_enrollment_allowed
    assert settings(
        consent_service_env="production", allow_uploaded_enrollment=True
    ).uploaded_enrollment_allowed
    assert not settings(allow_uploaded_enrollment=False).uploaded_enrollment_allowed


def test_the_former_name_of_the_uploads_setting_still_counts(tmp_path, monkeypatch):
    from consent_service.settings import Settings

    monkeypatch.setenv("ALLOW_PHOTO_ENROLLMENT", "true")
    monkeypatch.setenv("CONSENT_SERVICE_ENV", "production")
    assert Settings(consent_service_home=tmp_path).uploaded_enrollment_allowed
    monkeypatch.delenv("ALLOW_PHOTO_ENROLLMENT")
    monkeypatch.setenv("ALLOW_UPLOADED_ENROLLMENT", "true")
    assert Settings(consent_service_home=tmp_path).uploaded_enrollment_allowed
    monkeypatch.delenv("ALLOW_UPLOADED_ENROLLMENT")
    assert not Settings(consent_service_home=tmp_path).uploaded_enrollment_allowed
