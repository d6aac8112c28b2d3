"""The worker's half of any enrollment, in three named steps like the gate's: `claim` the
enrollment (a short transaction that counts the attempt before any decoding), `analyse` its
media (pure: bytes in, the person's vectors or the reason why not out), `record` the outcome (a
short transaction: templates, a dispute, or a failure; the media are destroyed after the commit).
Safe to run any number of times: an enrollment ends once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from sqlmodel import Session, select

from consent_service import db
from consent_service.audit import service as audit
from consent_service.biometrics import disputes
from consent_service.biometrics.assurance import settle_level
from consent_service.biometrics.matching import identify
from consent_service.biometrics.models import Enrollment
from consent_service.biometrics.service import (
    EnrollmentKind,
    add_templates,
    keep_error,
)
from consent_service.crypto import Envelope, KeySource
from consent_service.errors import DomainError, EnrollmentRejected, Msgid
from consent_service.storage import MediaStore
from consent_service.timeutil import utcnow
from consent_service.vocabulary import EnrollmentStatus

MISSING = "missing"


@dataclass(frozen=True)
class Claimed:
    """An enrollment this delivery works on, and its media keys."""

    enrollment_id: str
    subject_id: int
    attempts: int
    keys: list[str]


@dataclass(frozen=True)
class Ended:
    """Nothing to do: the enrollment has ended (or never existed)."""

    status: str


@dataclass
class Extracted:
    """What the media gave: the person's vectors, or why there are none; and the SHA-256 of
    each medium read (for the audit of their destruction)."""

    vectors: list[np.ndarray] = field(default_factory=list)
    error: DomainError | None = None
    digests: list[str] = field(default_factory=list)


def claim(session: Session, enrollment_id: str) -> Claimed | Ended:
    """Step one: count the attempt (before any decoding, so crashing media cannot loop)."""
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is None or enrollment.status != EnrollmentStatus.PENDING:
        return Ended(enrollment.status if enrollment else MISSING)
    enrollment.attempts += 1
    enrollment.claimed_at = utcnow()  # running: the stale-work sweep leaves it to this worker
    return Claimed(
        enrollment_id, enrollment.subject_id, enrollment.attempts, list(enrollment.media_keys)
    )


def load(store: MediaStore, keys: list[str]) -> list[bytes] | None:
    """The enrollment's media, or None when any of them is gone."""
    try:
        return [store.get(k) for k in keys]
    except KeyError:
        return None


def analyse(
    media: list[bytes] | None, kind: EnrollmentKind, attempts: int, max_attempts: int
) -> Extracted:
    """Step two, pure: the person's vectors from the media, or the reason, as an error (kept on
    the row in English and as message id + parameters, so each reader sees it in their own
    language). Media that crashed `max_attempts` workers are not read again."""
    if attempts > max_attempts:
        return Extracted(
            error=EnrollmentRejected(
                "%(media)s could not be processed after %(num)d attempts.",
                media=Msgid(kind.media),
                num=max_attempts,
            )
        )
    if media is None:
        return Extracted(error=EnrollmentRejected(kind.unavailable))
    digests = [hashlib.sha256(m).hexdigest() for m in media]
    try:
        return Extracted(vectors=kind.extract(media), digests=digests)
    except EnrollmentRejected as exc:
        return Extracted(error=exc, digests=digests)


def record(
    session: Session,
    claimed: Claimed,
    extracted: Extracted,
    kind: EnrollmentKind,
    envelope: Envelope,
    audit_key: KeySource,
    store: MediaStore,
) -> str:
    """Step three, under the enrollment's lock: templates (or a dispute when another account
    holds this face or voice, or the failure), the audit, and the media's destruction, done
    once the transaction has committed."""
    enrollment = session.exec(
        select(Enrollment).where(Enrollment.id == claimed.enrollment_id).with_for_update()
    ).one()
    if enrollment.status != EnrollmentStatus.PENDING:
        return enrollment.status
    settle(session, enrollment, extracted, kind, envelope, audit_key)
    enrollment.media_keys = []
    audit.append(
        session,
        audit_key,
        "media.destroyed",
        "system",
        {"enrollment_id": claimed.enrollment_id, "sha256": extracted.digests},
        subject_id=claimed.subject_id,
    )
    keys = list(claimed.keys)
    # After the commit: a crash before it leaves files for the sweep, never lost rows.
    db.after_commit(session, lambda: _delete(store, keys))
    return enrollment.status


def settle(
    session: Session,
    enrollment: Enrollment,
    extracted: Extracted,
    kind: EnrollmentKind,
    envelope: Envelope,
    audit_key: KeySource,
) -> str:
    """The outcome of a pending enrollment the caller holds locked: its templates (or a dispute
    when another account holds this face or voice, or the failure), audited. The media are the
    caller's: `record` destroys an upload's; a live session keeps its recording for review."""
    subject_id, what, vectors = enrollment.subject_id, kind.modality.value, extracted.vectors
    enrollment_id = enrollment.id
    error = extracted.error
    holder: int | None = None
    payload: dict[str, object]
    if error is None and disputes.open_claims_of(session, subject_id, what):
        error = EnrollmentRejected(
            "An operator is reviewing a dispute about the %(modality)s you enrolled; wait "
            "for the outcome before enrolling it again.",
            modality=Msgid(what),
        )
    elif error is None:
        gallery = kind.gallery.current(session, kind.modality)
        matches = (
            identify(gallery, v, kind.tolerance, 0.0, exclude_subject=subject_id).subject_id
            for v in vectors
        )
        holder = next((m for m in matches if m), None)
    if error is None and holder is not None:
        # Not added to the gallery: the vectors wait, encrypted, on a dispute an operator
        # resolves (consent_service/operators); both accounts are told (notices).
        dispute = disputes.open_dispute(
            session,
            envelope,
            audit_key,
            enrollment_id=enrollment_id,
            modality=what,
            model=kind.model_name,
            claimant_subject_id=subject_id,
            holder_subject_id=holder,
            vectors=vectors,
        )
        enrollment.status = EnrollmentStatus.DISPUTED.value
        keep_error(
            enrollment,
            EnrollmentRejected(
                "This %(modality)s is already enrolled by another account. An operator will "
                "review the dispute and both accounts will be told the outcome.",
                modality=Msgid(what),
            ),
        )
        event, payload = "biometrics.enrollment_disputed", {"dispute_id": dispute.id}
    elif error is None:
        add_templates(session, envelope, subject_id, what, kind.model_name, enrollment_id, vectors)
        enrollment.status = EnrollmentStatus.COMPLETED.value
        enrollment.template_count = len(vectors)
        event, payload = "biometrics.enrolled", {"templates": len(vectors)}
        # The subject's level is its weakest enrolled level: an upload lowers a live one.
        settle_level(
            session,
            audit_key,
            subject_id,
            actor="system",
            reason="enrollment_completed",
            evidence={"enrollment_id": enrollment_id, "enrollment": enrollment.assurance},
        )
    else:
        enrollment.status = EnrollmentStatus.FAILED.value
        keep_error(enrollment, error)
        event, payload = "biometrics.enrollment_failed", {"reason": enrollment.error}
    audit.append(
        session,
        audit_key,
        event,
        f"subject:{subject_id}",
        {"enrollment_id": enrollment_id, "modality": what, **payload},
        subject_id=subject_id,
    )
    enrollment.finished_at = utcnow()
    session.add(enrollment)
    session.flush()
    return enrollment.status


def _delete(store: MediaStore, keys: list[str]) -> None:
    for key in keys:
        store.delete(key)
