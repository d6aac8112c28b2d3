"""The face (or voice) a consent request is about, sealed like a template (AES-256-GCM envelope,
associated data binding it to the request) while the request is open. The face a job could not
name is kept by the gate (`consent_service.gate.finding_faces`) until a request takes it."""

from __future__ import annotations

import numpy as np

from consent_service.consent_requests.models import ConsentRequest
from consent_service.crypto import Envelope, wrapped_key_id


def request_aad(request_id: str) -> bytes:
    return f"consent-request-face:{request_id}".encode()


def seal_request_face(
    envelope: Envelope, request: ConsentRequest, modality: str, embedding: np.ndarray
) -> None:
    request.modality = modality
    request.face_ciphertext, request.face_wrapped_key = envelope.seal(
        np.asarray(embedding, dtype="<f8").tobytes(), request_aad(request.id)
    )
    request.face_kek_id = wrapped_key_id(request.face_wrapped_key)


def open_request_face(envelope: Envelope, request: ConsentRequest) -> np.ndarray | None:
    if request.face_ciphertext is None or request.face_wrapped_key is None:
        return None
    raw = envelope.open(request.face_ciphertext, request.face_wrapped_key, request_aad(request.id))
    return np.frombuffer(raw, dtype="<f8")


def wipe_request_face(request: ConsentRequest) -> None:
    request.face_ciphertext = request.face_wrapped_key = None
