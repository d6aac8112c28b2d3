"""Enrollment: photos in, encrypted templates out, photos destroyed; and the gallery workers match
against."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, update
from sqlmodel import Session, select

from consent_service import db
from consent_service.accounts.service import require_verified_subject
from consent_service.biometrics.faces import FaceEmbedder
from consent_service.biometrics.images import decode_image
from consent_service.biometrics.matching import Gallery, mutually_consistent
from consent_service.biometrics.models import BiometricTemplate, Enrollment, GalleryVersion
from consent_service.crypto import Envelope
from consent_service.errors import N_, DomainError, EnrollmentRejected, MediaRejected
from consent_service.media.limits import VideoLimits
from consent_service.storage import MediaStore
from consent_service.vocabulary import EnrollmentStatus, Modality


def _aad(subject_id: int, template_id: str) -> bytes:
    return f"template:{subject_id}:{template_id}".encode()


def seal_template(envelope: Envelope, template: BiometricTemplate, vector: np.ndarray) -> None:
    template.ciphertext, template.wrapped_key = envelope.seal(
        np.asarray(vector, dtype="<f8").tobytes(), _aad(template.subject_id, template.id)
    )


def open_template(envelope: Envelope, template: BiometricTemplate) -> np.ndarray:
    raw = envelope.open(
        template.ciphertext, template.wrapped_key, _aad(template.subject_id, template.id)
    )
    return np.frombuffer(raw, dtype="<f8")


def bump_gallery(session: Session, modality: Modality) -> None:
    if session.get(GalleryVersion, modality.value) is None:
        session.add(GalleryVersion(modality=modality.value, version=0))
        session.flush()
    session.execute(
        update(GalleryVersion)
        .where(GalleryVersion.modality == modality.value)
        .values(version=GalleryVersion.version + 1)
    )


class GalleryIndex:
    """A worker's decrypted gallery per modality, rebuilt when the version counter moves."""

    def __init__(self, envelope: Envelope, model_name: str):
        self._envelope = envelope
        self._model = model_name
        self._lock = threading.Lock()
        self._cached: dict[str, Gallery] = {}

    def current(self, session: Session, modality: Modality) -> Gallery:
        row = session.get(GalleryVersion, modality.value)
        version = row.version if row else 0
        with self._lock:
            cached = self._cached.get(modality.value)
            if cached is not None and cached.version == version:
                return cached
            templates = session.exec(
                select(BiometricTemplate).where(
                    BiometricTemplate.modality == modality.value,
                    BiometricTemplate.model == self._model,
                )
            ).all()
            gallery = Gallery.build(
                version, [(t.subject_id, open_template(self._envelope, t)) for t in templates]
            )
            self._cached[modality.value] = gallery
            return gallery


@dataclass(frozen=True)
class FaceMatching:
    """What enrollment and the gate need to find and compare faces."""

    embedder: FaceEmbedder
    gallery: GalleryIndex
    tolerance: float
    margin: float
    max_pixels: int
    # Photos of one person may differ more than an identification match allows: 1:1 threshold.
    same_person_tolerance: float = 0.6
    # Videos: decoding bounds, and how many of one person's faces vote on who they are.
    video: VideoLimits = VideoLimits()
    track_votes: int = 5


def start_face_enrollment(
    session: Session, store: MediaStore, subject_id: int, photos: list[bytes], max_photos: int
) -> Enrollment:
    """Keep the photos (encrypted) for the worker and record a pending enrollment."""
    photos = [p for p in photos if p]
    if not 1 <= len(photos) <= max_photos:
        raise EnrollmentRejected(
            "Upload between 1 and %(num)d photos of your face.", num=max_photos
        )
    return new_enrollment(session, store, subject_id, Modality.FACE, photos)


ENROLL_TASKS = {  # the task that finishes an enrollment (consent_service.biometrics.tasks)
    Modality.FACE: "biometrics.enroll_face",
    Modality.VOICE: "biometrics.enroll_voice",
}


def new_enrollment(
    session: Session, store: MediaStore, subject_id: int, modality: Modality, media: list[bytes]
) -> Enrollment:
    """A pending enrollment of these media, kept (encrypted) for the worker; its task is sent
    once the unit of work has committed. The account acting for the subject must be verified."""
    require_verified_subject(session, subject_id)
    enrollment = Enrollment(
        subject_id=subject_id, modality=modality.value, media_keys=[store.put(m) for m in media]
    )
    session.add(enrollment)
    session.flush()
    db.publish(session, ENROLL_TASKS[modality], enrollment.id)
    return enrollment


def _faces_of_one_person(matching: FaceMatching, photos: list[bytes]) -> list[np.ndarray]:
    embeddings = []
    for number, data in enumerate(photos, start=1):
        try:
            faces = matching.embedder.detect(decode_image(data, matching.max_pixels))
        except MediaRejected as exc:
            raise EnrollmentRejected(
                "Photo %(number)d: %(reason)s", number=number, reason=exc
            ) from None
        if not faces:
            raise EnrollmentRejected(
                "Photo %(number)d: no face was found. Use a clear, well-lit "
                "photo of your face looking at the camera.",
                number=number,
            )
        if len(faces) > 1:
            raise EnrollmentRejected(
                "Photo %(number)d shows %(faces)d faces; each photo must show only you.",
                number=number,
                faces=len(faces),
            )
        embeddings.append(faces[0].embedding)
    if not mutually_consistent(embeddings, matching.same_person_tolerance):
        raise EnrollmentRejected("The photos do not all show the same person.")
    return embeddings


def keep_error(enrollment: Enrollment, error: DomainError) -> None:
    """Why an enrollment stopped: English in `error` (operators, logs, the audit), message id and
    parameters in `error_params` for pages in the reader's language (`errors.stored_message`)."""
    enrollment.error = str(error)
    enrollment.error_params = error.to_json()


@dataclass(frozen=True)
class EnrollmentKind:
    """What differs between enrolling a face and a voice: how templates are drawn from the
    media, which gallery they join, and how the media are named in messages."""

    modality: Modality
    model_name: str
    gallery: GalleryIndex
    tolerance: float
    # Vectors of one person from the raw media; EnrollmentRejected with a reason otherwise.
    extract: Callable[[list[bytes]], list[np.ndarray]]
    media: str  # N_("The photos"), N_("The recording")
    unavailable: str  # N_(what to say when the media are gone)


def face_enrollment(matching: FaceMatching) -> EnrollmentKind:
    return EnrollmentKind(
        modality=Modality.FACE,
        model_name=matching.embedder.model_name,
        gallery=matching.gallery,
        tolerance=matching.tolerance,
        extract=lambda photos: _faces_of_one_person(matching, photos),
        media=N_("The photos"),
        unavailable=N_("The uploaded photos are no longer available; please upload them again."),
    )


def template_count(session: Session, subject_id: int, modality: Modality) -> int:
    return len(
        session.exec(
            select(BiometricTemplate.id).where(
                BiometricTemplate.subject_id == subject_id,
                BiometricTemplate.modality == modality.value,
            )
        ).all()
    )


def wait_for_enrollment(engine: Engine, enrollment_id: str, timeout: float) -> Enrollment:
    """Poll until a worker has finished the enrollment; TimeoutError if none does in time."""
    deadline = time.monotonic() + timeout
    while True:
        with Session(engine, expire_on_commit=False) as s:
            row = s.get(Enrollment, enrollment_id)
            if row is None:
                raise LookupError(f"no enrollment {enrollment_id}")
            if row.status != EnrollmentStatus.PENDING.value:
                return row
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no worker finished enrollment {enrollment_id} within "
                f"{timeout:.0f} s; is one running (`consent-service worker`)?"
            )
        time.sleep(0.5)
