"""Live face enrollment: the server asks for a random head-turn challenge, the browser sends one
camera picture per step, and the worker makes templates only if one face is in every picture and
the head turned as asked.

The turn is estimated from dlib's 5-point landmarks (two corners of each eye and the nose tip;
`face_landmarks(..., model="small")`), never from the 68-point model, whose training data licence
forbids commercial use. Seen from the camera (pictures are not mirrored), a head that turns to the
person's own left moves the nose tip towards the picture's right, away from the midpoint between
the eyes; `yaw` measures that shift in eye distances: about 0 looking straight ahead, positive
turned to the person's left, negative to their right.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import timedelta

import numpy as np
from sqlalchemy import delete
from sqlmodel import Session, col, select

from consent_service.biometrics.images import decode_image
from consent_service.biometrics.live_models import LiveChallenge
from consent_service.biometrics.matching import mutually_consistent
from consent_service.biometrics.models import Enrollment
from consent_service.biometrics.service import (
    EnrollmentKind,
    FaceMatching,
    face_enrollment,
    new_enrollment,
)
from consent_service.errors import N_, ChallengeRefused, EnrollmentRejected, MediaRejected
from consent_service.storage import MediaStore
from consent_service.timeutil import as_utc, utcnow
from consent_service.vocabulary import Modality

FRONT, LEFT, RIGHT = "front", "left", "right"
TURNS = (LEFT, RIGHT)
WHAT = {
    FRONT: N_("looking straight at the camera"),
    LEFT: N_("turning your head to your left"),
    RIGHT: N_("turning your head to your right"),
}
# A turn named in a message ("did not turn to the left").
TURN_NAMES = {LEFT: N_("left"), RIGHT: N_("right")}

Landmarks = dict[str, list[tuple[float, float]]]
# (RGB image, face box top/right/bottom/left) -> 5-point landmarks of that face.
LandmarkReader = Callable[[np.ndarray, tuple[int, int, int, int]], Landmarks]

_rng = random.SystemRandom()


def new_steps() -> list[str]:
    """Straight ahead first, then both turns in a random order."""
    turns = list(TURNS)
    _rng.shuffle(turns)
    return [FRONT, *turns]


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


def check_turns(steps: Sequence[str], yaws: Sequence[float], min_turn: float) -> None:
    """Each asked turn must move the nose at least `min_turn` eye distances from where it was
    when looking straight ahead, in the asked direction."""
    front = yaws[steps.index(FRONT)]
    for step, value in zip(steps, yaws, strict=True):
        if step == FRONT:
            continue
        moved = value - front if step == LEFT else front - value
        if moved < min_turn:
            raise EnrollmentRejected(
                "Your head did not turn to the %(step)s as asked, so this could not be checked as "
                "a live enrollment. Try again: turn your whole head (not only your eyes) when "
                "asked, and keep your face in the picture.",
                step=TURN_NAMES.get(step, step),
            )


def dlib_landmarks(rgb: np.ndarray, box: tuple[int, int, int, int]) -> Landmarks:
    import face_recognition  # heavy: dlib and its models, loaded on first use (workers only)

    found = face_recognition.face_landmarks(rgb, face_locations=[box], model="small")
    return found[0]


def live_faces(
    matching: FaceMatching,
    steps: Sequence[str],
    min_turn: float,
    frames: list[bytes],
    landmarks: LandmarkReader = dlib_landmarks,
) -> list[np.ndarray]:
    """The embeddings of the one person in every picture, if their head turned as asked."""
    if len(frames) != len(steps):
        raise EnrollmentRejected(
            "Expected %(steps)d camera pictures, one per step, but %(frames)d arrived.",
            steps=len(steps),
            frames=len(frames),
        )
    embeddings, yaws = [], []
    for step, data in zip(steps, frames, strict=True):
        try:
            rgb = decode_image(data, matching.max_pixels)
        except MediaRejected as exc:
            raise EnrollmentRejected(
                "The picture taken %(what)s: %(reason)s", what=WHAT[step], reason=exc
            ) from None
        faces = matching.embedder.detect(rgb)
        if not faces:
            raise EnrollmentRejected(
                "No face was found in the picture taken %(what)s. Keep your whole face in "
                "the picture, in good light, and try again.",
                what=WHAT[step],
            )
        if len(faces) > 1:
            raise EnrollmentRejected(
                "The picture taken %(what)s shows %(faces)d faces; only you may be in it.",
                what=WHAT[step],
                faces=len(faces),
            )
        embeddings.append(faces[0].embedding)
        yaws.append(yaw(landmarks(rgb, faces[0].box)))
    if not mutually_consistent(embeddings, matching.same_person_tolerance):
        raise EnrollmentRejected("The camera pictures do not all show the same person.")
    check_turns(steps, yaws, min_turn)
    return embeddings


def face_enrollment_kind(
    matching: FaceMatching,
    live_steps: list[str] | None,
    min_turn: float,
    landmarks: LandmarkReader = dlib_landmarks,
) -> EnrollmentKind:
    """How the worker turns a face enrollment into templates: a live one (the steps of the
    challenge it answered) answers a head turn, any other is an upload of photos."""
    if live_steps is None:
        return face_enrollment(matching)
    steps = list(live_steps)
    return EnrollmentKind(
        modality=Modality.FACE,
        model_name=matching.embedder.model_name,
        gallery=matching.gallery,
        tolerance=matching.tolerance,
        extract=lambda frames: live_faces(matching, steps, min_turn, frames, landmarks),
        media=N_("The camera pictures"),
        unavailable=N_("The camera pictures are no longer available; please enroll again."),
    )


def issue_challenge(
    session: Session,
    subject_id: int,
    ttl_seconds: int,
    modality: Modality = Modality.FACE,
    *,
    phrase: str | None = None,
    language: str | None = None,
) -> LiveChallenge:
    """A new challenge for the person: a head turn (face, steps drawn here) or what the caller
    draws for its modality (voice: `phrase` and `language`). Any earlier one of the same
    modality they did not use is void; the other modality's is left alone."""
    session.execute(
        delete(LiveChallenge).where(
            col(LiveChallenge.subject_id) == subject_id,
            col(LiveChallenge.modality) == modality.value,
            col(LiveChallenge.used_at).is_(None),
        )
    )
    now = utcnow()
    challenge = LiveChallenge(
        subject_id=subject_id,
        modality=modality.value,
        steps=new_steps() if modality is Modality.FACE else [],
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
        phrase=phrase,
        language=language,
    )
    session.add(challenge)
    session.flush()
    return challenge


AGAIN = N_("Reload the page to start again.")


def claim_challenge(
    session: Session, subject_id: int, challenge_id: str, modality: Modality
) -> LiveChallenge:
    """The person's own unused, unexpired challenge of this modality, locked until the caller
    marks it used (ChallengeRefused otherwise)."""
    challenge = session.exec(
        select(LiveChallenge).where(LiveChallenge.id == challenge_id).with_for_update()
    ).first()
    if (
        challenge is None
        or challenge.subject_id != subject_id
        or challenge.modality != modality.value
    ):
        raise ChallengeRefused("unknown", "This challenge is not known. %(again)s", again=AGAIN)
    if challenge.used_at is not None:
        raise ChallengeRefused("used", "This challenge was already used. %(again)s", again=AGAIN)
    if as_utc(challenge.expires_at) <= utcnow():
        raise ChallengeRefused("expired", "This challenge expired. %(again)s", again=AGAIN)
    return challenge


def start_live_enrollment(
    session: Session, store: MediaStore, subject_id: int, challenge_id: str, frames: list[bytes]
) -> Enrollment:
    """Use up the challenge and keep the pictures (encrypted) for the worker."""
    challenge = claim_challenge(session, subject_id, challenge_id, Modality.FACE)
    frames = [f for f in frames if f]
    if len(frames) != len(challenge.steps):
        raise EnrollmentRejected(
            "Expected %(steps)d camera pictures, one per step. %(again)s",
            steps=len(challenge.steps),
            again=AGAIN,
        )
    enrollment = new_enrollment(session, store, subject_id, Modality.FACE, frames)
    use_challenge(session, challenge, enrollment)
    return enrollment


def use_challenge(session: Session, challenge: LiveChallenge, enrollment: Enrollment) -> None:
    """Mark a claimed challenge used, by the enrollment it answered (it answers one only)."""
    challenge.used_at = utcnow()
    challenge.enrollment_id = enrollment.id
    session.add(challenge)
    session.flush()
