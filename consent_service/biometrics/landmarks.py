"""Head pose from dlib's 5-point landmarks (two corners of each eye and the nose tip;
`face_landmarks(..., model="small")`), never from the 68-point model, whose training data licence
forbids commercial use. The live consent session's analyser (`live_recording`) reads the pose
through these.

Seen from the camera (pictures are not mirrored), a head that turns to the person's own left
moves the nose tip towards the picture's right, away from the midpoint between the eyes; `yaw`
measures that shift in eye distances: about 0 looking straight ahead, positive turned to the
person's left, negative to their right.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from consent_service.errors import EnrollmentRejected

Landmarks = dict[str, list[tuple[float, float]]]
# (RGB image, face box top/right/bottom/left) -> 5-point landmarks of that face.
LandmarkReader = Callable[[np.ndarray, tuple[int, int, int, int]], Landmarks]


def yaw(landmarks: Landmarks) -> float:
    """How far the nose tip sits from the midpoint between the eyes, along the line through the
    eyes (so a tilted head reads the same), in eye distances. Positive: the person's left."""
    eyes = sorted(
        (np.mean(np.asarray(landmarks[k], dtype=float), axis=0) for k in ("left_eye", "right_eye")),
        key=lambda p: p[0],
    )
    axis = eyes[1] - eyes[0]  # from the eye on the picture's left to the one on its right
    distance = float(np.linalg.norm(axis))
    if distance == 0:
        raise EnrollmentRejected("The eyes could not be told apart; face the camera in good light.")
    nose = np.asarray(landmarks["nose_tip"][0], dtype=float)
    return float(np.dot(nose - (eyes[0] + eyes[1]) / 2, axis / distance) / distance)


def dlib_landmarks(rgb: np.ndarray, box: tuple[int, int, int, int]) -> Landmarks:
    import face_recognition  # heavy: dlib and its models, loaded on first use (workers only)

    found = face_recognition.face_landmarks(rgb, face_locations=[box], model="small")
    return found[0]
