"""Voices, the web's half: what matching a voice needs, whether this installation can, and the
start of a voice enrollment. Decoding and the model (`voice_analysis`) load in workers only."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from sqlmodel import Session

from consent_service.biometrics.models import Enrollment
from consent_service.biometrics.service import Galleries, new_enrollment
from consent_service.biometrics.voices import VoiceEmbedder
from consent_service.errors import EnrollmentRejected, InvalidRequest
from consent_service.storage import MediaStore
from consent_service.vocabulary import Modality


@dataclass(frozen=True)
class VoiceMatching:
    """What voice enrollment and the gate need to find and compare voices."""

    embedder: VoiceEmbedder
    gallery: Galleries
    tolerance: float
    margin: float
    same_speaker: float
    max_seconds: float


def voice_available() -> bool:
    """Whether this installation has the `voice` extra (checked without importing torch)."""
    return all(importlib.util.find_spec(m) for m in ("resemblyzer", "webrtcvad", "av"))


def require_voice() -> None:
    if not voice_available():
        raise InvalidRequest(
            "Voice gating and enrollment need the server's `voice` extra "
            '(pip install "consent-service[voice]"), which is not installed here.'
        )


def start_voice_enrollment(
    session: Session, store: MediaStore, subject_id: int, recording: bytes
) -> Enrollment:
    """Keep the recording (encrypted) for the worker and record a pending voice enrollment."""
    require_voice()
    if not recording:
        raise EnrollmentRejected("Upload a recording of your voice.")
    return new_enrollment(session, store, subject_id, Modality.VOICE, [recording])
