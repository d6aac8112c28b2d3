"""The yaw from 5-point landmarks (the live consent session's pose reads it); dlib's landmarks
themselves are exercised end to end."""

from __future__ import annotations

import numpy as np
import pytest

from consent_service.biometrics.landmarks import yaw
from consent_service.errors import EnrollmentRejected


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
    assert yaw(landmarks(0)) == pytest.approx(0)
    assert yaw(landmarks(25)) == pytest.approx(0.25)  # towards the picture's right
    assert yaw(landmarks(-25)) == pytest.approx(-0.25)
    assert yaw(landmarks(25, tilt=0.3)) == pytest.approx(0.25)


def test_eyes_that_cannot_be_told_apart_are_refused():
    same = {
        "left_eye": [(200.0, 200.0)],
        "right_eye": [(200.0, 200.0)],
        "nose_tip": [(200.0, 260.0)],
    }
    with pytest.raises(EnrollmentRejected, match="eyes could not be told apart"):
        yaw(same)
