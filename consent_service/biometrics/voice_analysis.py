"""Voices, the worker's half: a recording in, one speaker per distinct voice out (for the gate),
or the one voice of an enrollment. Imports PyAV and webrtcvad: workers only."""

from __future__ import annotations

import numpy as np

from consent_service.biometrics.audio import decode_audio, speech_segments
from consent_service.biometrics.service import EnrollmentKind
from consent_service.biometrics.voice_service import VoiceMatching
from consent_service.biometrics.voices import (
    HEARD_AGGRESSIVENESS,
    SPEECH_CONTEXT,
    Speaker,
    find_speakers,
)
from consent_service.errors import N_, EnrollmentRejected, MediaRejected
from consent_service.vocabulary import Modality

NO_SPEECH = N_(
    "No speech was heard in the recording. Record yourself reading aloud for 10 to 30 seconds, "
    "close to the microphone, in a quiet room."
)


def speakers_in(data: bytes, matching: VoiceMatching) -> list[Speaker]:
    """Every distinct voice in an audio file or a video's audio track (MediaRejected when the
    media cannot be used); an empty list when nobody speaks."""
    samples = decode_audio(data, matching.max_seconds)
    heard = speech_segments(samples, aggressiveness=HEARD_AGGRESSIVENESS, context=SPEECH_CONTEXT)
    return find_speakers(
        speech_segments(samples), matching.embedder, matching.same_speaker, heard=heard
    )


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
