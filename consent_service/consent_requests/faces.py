"""The face (or voice) a job found but could not name, sealed like a template (AES-256-GCM
envelope, associated data binding it to its row) while a consent request may need it."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from sqlmodel import Session

from consent_service.consent_requests.models import ConsentRequest, FindingFace
from consent_service.crypto import Envelope
from consent_service.vocabulary import Modality


def _finding_aad(finding_id: int, job_id: str) -> bytes:
    return f"finding-face:{finding_id}:{job_id}".encode()


def _request_aad(request_id: str) -> bytes:
    return f"consent-request-face:{request_id}".encode()


def keep_finding_face(
    session: Session,
    envelope: Envelope,
    finding,
    modality: Modality,
    embedding: np.ndarray,
    expires_at: datetime,
) -> FindingFace:
    """Seal one finding's embedding (in the transaction that records the decision)."""
    ciphertext, wrapped = envelope.seal(
        np.asarray(embedding, dtype="<f8").tobytes(), _finding_aad(finding.id, finding.job_id)
    )
    row = FindingFace(
        finding_id=finding.id,
        job_id=finding.job_id,
        modality=modality.value,
        ciphertext=ciphertext,
        wrapped_key=wrapped,
        expires_at=expires_at,
    )
    session.add(row)
    return row


def open_finding_face(envelope: Envelope, row: FindingFace) -> np.ndarray:
    raw = envelope.open(row.ciphertext, row.wrapped_key, _finding_aad(row.finding_id, row.job_id))
    return np.frombuffer(raw, dtype="<f8")


def seal_request_face(
    envelope: Envelope, request: ConsentRequest, modality: str, embedding: np.ndarray
) -> None:
    request.modality = modality
    request.face_ciphertext, request.face_wrapped_key = envelope.seal(
        np.asarray(embedding, dtype="<f8").tobytes(), _request_aad(request.id)
    )


def open_request_face(envelope: Envelope, request: ConsentRequest) -> np.ndarray | None:
    if request.face_ciphertext is None or request.face_wrapped_key is None:
        return None
    raw = envelope.open(request.face_ciphertext, request.face_wrapped_key, _request_aad(request.id))
    return np.frombuffer(raw, dtype="<f8")


def wipe_request_face(request: ConsentRequest) -> None:
    request.face_ciphertext = request.face_wrapped_key = None
