"""Celery tasks: thin wrappers that hand ids to the domain services."""

from __future__ import annotations

from celery import shared_task

from consent_service import db
from consent_service.biometrics.service import run_face_enrollment
from consent_service.gate.service import process_job
from consent_service.services import services


@shared_task(name="gate.process_job", ignore_result=True)
def gate_process_job(job_id: str) -> str:
    svc = services()
    return process_job(
        db.engine(),
        job_id,
        svc.media_store,
        svc.face_matching,
        svc.audit_key,
        svc.settings.job_max_attempts,
    )


@shared_task(name="biometrics.enroll_face", ignore_result=True)
def biometrics_enroll_face(enrollment_id: str) -> str:
    svc = services()
    return run_face_enrollment(
        db.engine(),
        enrollment_id,
        svc.media_store,
        svc.face_matching,
        svc.envelope,
        svc.audit_key,
        svc.settings.job_max_attempts,
    )
