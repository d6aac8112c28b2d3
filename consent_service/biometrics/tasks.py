"""Enrollment tasks: a face or a voice enrollment through its pipeline (claim, analyse, record).
Registered by the Celery app (`consent_service.tasking.celery_init_app`). Imports the
decoders: workers only."""

from __future__ import annotations

from celery import shared_task

from consent_service import db
from consent_service.biometrics import enrollment
from consent_service.biometrics.liveness import face_enrollment_kind
from consent_service.biometrics.service import ENROLL_TASKS, EnrollmentKind
from consent_service.biometrics.voice_analysis import voice_enrollment
from consent_service.crypto import Envelope, KeySource
from consent_service.runtime import services
from consent_service.storage import MediaStore
from consent_service.vocabulary import Modality


@shared_task(name=ENROLL_TASKS[Modality.FACE], ignore_result=True)
def enroll_face(enrollment_id: str) -> str:
    svc = services()
    return enroll(
        enrollment_id,
        svc.media_store,
        # A live enrollment answers a head-turn challenge; any other is an upload of photos.
        lambda steps: face_enrollment_kind(svc.face_matching, steps, svc.settings.live_min_turn),
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
        lambda _steps: voice_enrollment(svc.voice_matching),
        svc.envelope,
        svc.audit_key,
        svc.settings.job_max_attempts,
    )


def enroll(
    enrollment_id: str,
    store: MediaStore,
    kind_for: enrollment.KindFor,
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
    kind: EnrollmentKind = kind_for(claimed.live_steps)
    media = None if claimed.attempts > max_attempts else enrollment.load(store, claimed.keys)
    extracted = enrollment.analyse(media, kind, claimed.attempts, max_attempts)
    with db.unit_of_work() as s:
        return enrollment.record(s, claimed, extracted, kind, envelope, audit_key, store)
