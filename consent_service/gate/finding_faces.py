"""The face (or voice) a job found but could not name, sealed like a template (AES-256-GCM
envelope, associated data binding it to its row) while a consent request may need it."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from sqlmodel import Session

from consent_service.crypto import Envelope, wrapped_key_id
from consent_service.gate.models import Finding, FindingFace
from consent_service.vocabulary import Modality


def finding_aad(finding_id: int, job_id: str) -> bytes:
    return f"finding-face:{finding_id}:{job_id}".encode()


def keep_finding_face(
    session: Session,
    envelope: Envelope,
    finding: Finding,
    modality: Modality,
    embedding: np.ndarray,
    expires_at: datetime,
) -> FindingFace:
    """Seal one finding's embedding (in the transaction that records the decision)."""
    assert finding.id is not None  # flushed with its decision
    ciphertext, wrapped = envelope.seal(
        np.asarray(embedding, dtype="<f8").tobytes(), finding_aad(finding.id, finding.job_id)
    )
    row = FindingFace(
        finding_id=finding.id,
        job_id=finding.job_id,
        modality=modality.value,
        ciphertext=ciphertext,
        wrapped_key=wrapped,
        kek_id=wrapped_key_id(wrapped),
        expires_at=expires_at,
    )
    session.add(row)
    return row


def open_finding_face(envelope: Envelope, row: FindingFace) -> np.ndarray:
    raw = envelope.open(row.ciphertext, row.wrapped_key, finding_aad(row.finding_id, row.job_id))
    return np.frombuffer(raw, dtype="<f8")
