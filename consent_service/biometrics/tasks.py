"""Enrollment tasks: a face or a voice enrollment through its pipeline (claim, analyse, record).
Registered by the Celery app (`consent_service.tasking.celery_init_app`). Imports the
decoders: workers only."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from celery import shared_task

from consent_service import db
from consent_service.biometrics import enrollment, live_recording, live_session, shards
from consent_service.biometrics.gallery import Rule
from consent_service.biometrics.service import (
    ENROLL_TASKS,
    EnrollmentKind,
    GalleryIndex,
    face_enrollment,
)
from consent_service.biometrics.voice_analysis import voice_enrollment
from consent_service.biometrics.voice_service import voice_available
from consent_service.crypto import Envelope, KeySource
from consent_service.runtime import services
from consent_service.storage import MediaStore
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Modality

if TYPE_CHECKING:
    from consent_service.services import Services
    from consent_service.settings import Settings

log = logging.getLogger(__name__)


@shared_task(name=ENROLL_TASKS[Modality.FACE], ignore_result=True)
def enroll_face(enrollment_id: str) -> str:
    svc = services()
    return enroll(
        enrollment_id,
        svc.media_store,
        face_enrollment(svc.face_matching),
        svc.envelope,
        svc.audit_key,
        svc.settings.job_max_attempts,
    )


@shared_task(name=ENROLL_TASKS[Modality.VOICE], ignore_result=True)
def enroll_voice(enrollment_id: str) -> str:
    svc = services()
    return enroll(
        enrollment_id,
        svc.media_store,
        voice_enrollment(svc.voice_matching),
        svc.envelope,
        svc.audit_key,
        svc.settings.job_max_attempts,
    )


def enroll(
    enrollment_id: str,
    store: MediaStore,
    kind: EnrollmentKind,
    envelope: Envelope,
    audit_key: KeySource,
    max_attempts: int,
) -> str:
    """Claim, analyse, record: templates from the media, or a clear reason why not; the media
    are destroyed either way. Idempotent."""
    with db.unit_of_work() as s:
        claimed = enrollment.claim(s, enrollment_id)
    if isinstance(claimed, enrollment.Ended):
        return claimed.status
    media = None if claimed.attempts > max_attempts else enrollment.load(store, claimed.keys)
    extracted = enrollment.analyse(media, kind, claimed.attempts, max_attempts)
    with db.unit_of_work() as s:
        return enrollment.record(s, claimed, extracted, kind, envelope, audit_key, store)


def live_checks(s: Settings) -> live_recording.LiveChecks:
    """The live session's checks with the settings in force: the recording's bounds, and the
    same face and voice thresholds the gate and enrollment use (`VOICE_SAME_SPEAKER` groups the
    recording's voices as it groups an uploaded clip's)."""
    return live_recording.LiveChecks(
        max_bytes=s.live_recording_max_bytes,
        # The page stops at the limit; a container's last frames may run a little past it.
        max_seconds=s.live_recording_max_seconds + 5.0,
        face_tolerance=s.face_tolerance,
        voice_tolerance=s.voice_tolerance,
        same_speaker=s.voice_same_speaker,
    )


@shared_task(name=live_session.TASK, ignore_result=True)
def check_live_session(session_id: str) -> str:
    svc = services()
    checks = live_checks(svc.settings)
    return run_live_session(
        session_id,
        live_context(svc),
        lambda data, script: live_recording.analyse_recording(data, script, checks=checks),
        svc.settings.job_max_attempts,
    )


def live_context(svc: Services) -> live_session.Context:
    s = svc.settings
    return live_session.Context(
        envelope=svc.envelope,
        audit_key=svc.audit_key,
        recordings=svc.recording_store,
        face=face_enrollment(svc.face_matching),
        voice=voice_enrollment(svc.voice_matching) if voice_available() else None,
        face_tolerance=s.face_tolerance,
        voice_tolerance=s.voice_tolerance,
        review_seconds=s.live_review_window,
    )


def run_live_session(
    session_id: str, ctx: live_session.Context, analyser: live_session.Analyser, max_attempts: int
) -> str:
    """Claim, analyse, record: the session's outcome for its purpose (templates and `live`, or
    the waiting action carried out), or a clear reason why not. Idempotent."""
    with db.unit_of_work() as s:
        claimed = live_session.claim(s, session_id)
    if isinstance(claimed, live_session.Ended):
        return claimed.status
    recording = (
        None
        if claimed.attempts > max_attempts
        else live_session.load(ctx.recordings, claimed.recording_key)
    )
    checked = live_session.analyse(recording, claimed, analyser, max_attempts)
    with db.unit_of_work() as s:
        return live_session.record(s, claimed, checked, ctx)


@shared_task(name="live_sessions.sweep", ignore_result=True)
def sweep_live_sessions() -> tuple[int, int]:
    """Recordings past their review window destroyed (audited); lost checks sent again."""
    svc = services()
    with db.unit_of_work() as s:
        return live_session.sweep(
            s, svc.audit_key, svc.recording_store, utcnow(), svc.settings.outbox_sweep_after
        )


# ---------------------------------------------------------------------------- gallery shards
@shared_task(name=shards.SEARCH_SHARD, ignore_result=False)
def search_shard(
    modality: str,
    shard: int,
    count: int,
    probes: list[list[float]],
    exclude_subject: int | None,
    rule: str,
) -> shards.ShardAnswer:
    """One shard's part of a job's search (a shard worker only: `worker --shard`): each probe's
    two nearest subjects of this shard's gallery, brought up to the change log's head first."""
    svc = services()
    s = svc.settings
    if (s.gallery_shard, s.gallery_shards) != (shard, count):
        raise RuntimeError(
            f"a search for shard {shard} of {count} reached the worker of shard "
            f"{s.gallery_shard} of {s.gallery_shards}"
        )
    kind = Modality(modality)
    index = (svc.face_matching if kind is Modality.FACE else svc.voice_matching).gallery
    if not isinstance(index, GalleryIndex):
        raise RuntimeError("this worker holds no gallery shard")
    started = time.perf_counter()
    with db.unit_of_work() as session:
        gallery = index.current(session, kind)
    answer = shards.search_shard(gallery, probes, exclude_subject, Rule(rule))
    log.info(
        "gallery shard %d/%d: %s, %d probes over %d templates, %.1f ms",
        shard,
        count,
        modality,
        len(probes),
        len(gallery),
        (time.perf_counter() - started) * 1000,
    )
    return answer


@shared_task(name=shards.MERGE_SHARDS, ignore_result=False)
def merge_shards(
    answers: list[shards.ShardAnswer], tolerance: float, margin: float
) -> list[tuple[int | None, bool]]:
    """The chord's callback: each probe's decision from every shard's answer."""
    return [(m.subject_id, m.ambiguous) for m in shards.merge_answers(answers, tolerance, margin)]
