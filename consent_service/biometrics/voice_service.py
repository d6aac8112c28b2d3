"""Voices: a recording in, one finding per distinct speaker out; and voice enrollment (a recording
in, a template out, the recording destroyed). Decoding and the model load in workers only."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np
from sqlmodel import Session

from consent_service.biometrics.models import Enrollment
from consent_service.biometrics.service import EnrollmentKind, GalleryIndex
from consent_service.biometrics.voices import (
    HEARD_AGGRESSIVENESS,
    SPEECH_CONTEXT,
    Speaker,
    VoiceEmbedder,
    find_speakers,
)
from consent_service.errors import N_, EnrollmentRejected, InvalidRequest, MediaRejected
from consent_service.storage import MediaStore
from consent_service.vocabulary import Modality

NO_SPEECH = N_(
    "No speech was heard in the recording. Record yourself reading aloud for 10 to 30 seconds, "
    "close to the microphone, in a quiet room."
)


@dataclass(frozen=True)
class VoiceMatching:
    """What voice enrollment and the gate need to find and compare voices."""

    embedder: VoiceEmbedder
    gallery: GalleryIndex
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


def speakers_in(data: bytes, matching: VoiceMatching) -> list[Speaker]:
    """Every distinct voice in an audio file or a video's audio track (MediaRejected when the
    media cannot be used); an empty list when nobody speaks."""
    from consent_service.biometrics.audio import decode_audio, speech_segments  # PyAV, webrtcvad

    samples = decode_audio(data, matching.max_seconds)
    heard = speech_segments(samples, aggressiveness=HEARD_AGGRESSIVENESS, context=SPEECH_CONTEXT)
    return find_speakers(
        speech_segments(samples), matching.embedder, matching.same_speaker, heard=heard
    )


def start_voice_enrollment(
    session: Session, store: MediaStore, subject_id: int, recording: bytes
) -> Enrollment:
    """Keep the recording (encrypted) for the worker and record a pending voice enrollment."""
    require_voice()
    if not recording:
        raise EnrollmentRejected("Upload a recording of your voice.")
    enrollment = Enrollment(
        subject_id=subject_id, modality=Modality.VOICE.value, media_keys=[store.put(recording)]
    )
    session.add(enrollment)
    session.flush()
    return enrollment


def _one_voice(matching: VoiceMatching, recording: bytes) -> np.ndarray:
    try:
        speakers = speakers_in(recording, matching)
    except MediaRejected as exc:
        raise EnrollmentRejected("The recording cannot be used: %(reason)s", reason=exc) from None
    if not speakers:
        raise EnrollmentRejected(NO_SPEECH)
    # A stray window (a cough, a door) may form a speaker of its own; another voice that speaks
    # for a quarter of the recording is someone else.
    total = sum(sp.seconds for sp in speakers)
    others = [sp for sp in speakers[1:] if sp.seconds >= 0.25 * total]
    if others:
        raise EnrollmentRejected(
            "%(num)d different voices were heard; the recording must be only you.",
            num=len(others) + 1,
        )
    return speakers[0].embedding


def voice_enrollment(matching: VoiceMatching) -> EnrollmentKind:
    return EnrollmentKind(
        modality=Modality.VOICE,
        model_name=matching.embedder.model_name,
        gallery=matching.gallery,
        tolerance=matching.tolerance,
        extract=lambda recordings: [_one_voice(matching, recordings[0])],
        media=N_("The recording"),
        unavailable=N_("The recording is no longer available; please record it again."),
    )
