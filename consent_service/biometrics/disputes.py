"""Enrollment disputes: a new face or voice that matches another account's templates is held,
encrypted and outside the gallery, until an operator resolves it (operators/service.py). Opened
by enrollment (biometrics/service.py), withdrawn by account deletion (rights/service.py)."""

from __future__ import annotations

import numpy as np
from sqlmodel import Session, select

from consent_service.audit import service as audit
from consent_service.biometrics.models import Enrollment, EnrollmentDispute
from consent_service.crypto import Envelope, KeySource, wrapped_key_id
from consent_service.notices.service import notify
from consent_service.timeutil import utcnow
from consent_service.vocabulary import DisputeStatus, EnrollmentStatus

OPEN = DisputeStatus.OPEN.value


def dispute_aad(dispute_id: str) -> bytes:
    return f"dispute:{dispute_id}".encode()


def seal_vectors(envelope: Envelope, dispute: EnrollmentDispute, vectors: list[np.ndarray]) -> None:
    matrix = np.asarray(np.stack(vectors), dtype="<f8")
    dispute.vector_count = matrix.shape[0]
    dispute.ciphertext, dispute.wrapped_key = envelope.seal(
        matrix.tobytes(), dispute_aad(dispute.id)
    )
    dispute.kek_id = wrapped_key_id(dispute.wrapped_key)


def open_vectors(envelope: Envelope, dispute: EnrollmentDispute) -> list[np.ndarray]:
    raw = envelope.open(dispute.ciphertext, dispute.wrapped_key, dispute_aad(dispute.id))
    return list(np.frombuffer(raw, dtype="<f8").reshape(dispute.vector_count, -1))


def open_claims_of(session: Session, subject_id: int, modality: str) -> list[EnrollmentDispute]:
    """The subject's open disputes as claimant of `modality` (no new enrollment meanwhile)."""
    return list(
        session.exec(
            select(EnrollmentDispute).where(
                EnrollmentDispute.status == OPEN,
                EnrollmentDispute.modality == modality,
                EnrollmentDispute.claimant_subject_id == subject_id,
            )
        ).all()
    )


def open_dispute(
    session: Session,
    envelope: Envelope,
    audit_key: KeySource,
    *,
    enrollment_id: str,
    modality: str,
    model: str,
    claimant_subject_id: int,
    holder_subject_id: int,
    vectors: list[np.ndarray],
) -> EnrollmentDispute:
    """Record the dispute in the caller's transaction, tell both people and audit it."""
    dispute = EnrollmentDispute(
        enrollment_id=enrollment_id,
        modality=modality,
        model=model,
        claimant_subject_id=claimant_subject_id,
        holder_subject_id=holder_subject_id,
    )
    seal_vectors(envelope, dispute, vectors)
    session.add(dispute)
    notify(
        session, claimant_subject_id, "dispute.opened", "dispute.opened.claimant", modality=modality
    )
    notify(session, holder_subject_id, "dispute.opened", "dispute.opened.holder", modality=modality)
    session.flush()
    audit.append(
        session,
        audit_key,
        "dispute.opened",
        "system",
        {
            "dispute_id": dispute.id,
            "enrollment_id": enrollment_id,
            "modality": modality,
            "claimant_subject_id": claimant_subject_id,
            "holder_subject_id": holder_subject_id,
        },
        subject_id=claimant_subject_id,
    )
    return dispute


def withdraw_claims(session: Session, subject_id: int) -> int:
    """A claimant's account is deleted: its open disputes end as `withdrawn` and the held vectors
    are destroyed at once (the caller commits)."""
    claims = open_claims_of(session, subject_id, "face") + open_claims_of(
        session, subject_id, "voice"
    )
    for dispute in claims:
        dispute.ciphertext, dispute.wrapped_key = b"", b""
        dispute.status = DisputeStatus.WITHDRAWN.value
        dispute.resolved_by = "system:account-deleted"
        dispute.resolved_at = utcnow()
        session.add(dispute)
        enrollment = session.get(Enrollment, dispute.enrollment_id)
        if enrollment is not None:
            enrollment.status = EnrollmentStatus.FAILED.value
            enrollment.error = "The account was deleted."
            session.add(enrollment)
    session.flush()
    return len(claims)
