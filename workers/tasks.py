"""Celery tasks: thin wrappers that hand ids to the domain services."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from flask import current_app

from consent_service import db
from consent_service.biometrics.liveness import face_enrollment_kind
from consent_service.biometrics.service import run_enrollment
from consent_service.biometrics.voice_service import voice_enrollment
from consent_service.gate.service import process_job
from consent_service.gate.sweep import find_stale
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from workers import publish


@shared_task(name="gate.process_job", ignore_result=True)
def gate_process_job(job_id: str) -> str:
    svc = services()
    status = process_job(
        db.engine(),
        job_id,
        svc.media_store,
        svc.face_matching,
        svc.audit_key,
        svc.settings.job_max_attempts,
        voice_matching=svc.voice_matching,
        signer=svc.decision_signer,
        pseudonym_key=svc.pseudonym_key,
        envelope=svc.envelope,  # keeps unnamed people's faces for consent requests
        finding_face_ttl=timedelta(seconds=svc.settings.consent_request_finding_ttl),
    )
    return status


@shared_task(name="biometrics.enroll_face", ignore_result=True)
def biometrics_enroll_face(enrollment_id: str) -> str:
    svc = services()
    return run_enrollment(
        db.engine(),
        enrollment_id,
        svc.media_store,
        # A live enrollment answers a head-turn challenge; any other is an upload of photos.
        face_enrollment_kind(
            db.engine(), enrollment_id, svc.face_matching, svc.settings.live_min_turn
        ),
        svc.envelope,
        svc.audit_key,
        svc.settings.job_max_attempts,
    )


@shared_task(name="biometrics.enroll_voice", ignore_result=True)
def biometrics_enroll_voice(enrollment_id: str) -> str:
    svc = services()
    return run_enrollment(
        db.engine(),
        enrollment_id,
        svc.media_store,
        voice_enrollment(svc.voice_matching),
        svc.envelope,
        svc.audit_key,
        svc.settings.job_max_attempts,
    )


@shared_task(name="sweep.stale_work", ignore_result=True)
def sweep_stale_work() -> int:
    """Publish again every job and enrollment whose task message may have been lost."""
    settings = services().settings
    stale = find_stale(
        db.session(),
        utcnow(),
        queued_for=timedelta(seconds=settings.outbox_sweep_after),
        # Longer than the broker's own redelivery of unacknowledged work (twice the time limit).
        processing_for=timedelta(seconds=settings.task_time_limit * 3),
    )
    for job_id in stale.job_ids:
        publish(current_app, "gate.process_job", job_id)
    for enrollment_id, modality in stale.enrollments:
        publish(current_app, f"biometrics.enroll_{modality}", enrollment_id)
    return len(stale.job_ids) + len(stale.enrollments)
