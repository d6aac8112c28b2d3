"""The gate's Celery tasks: decide a job (its pipeline, read top to bottom), and the sweep that
publishes again the work whose task message was lost. Registered by the Celery app
(`consent_service.tasking.celery_init_app`); tasks are thin: ids in, steps called, status out."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from celery import Task, shared_task
from sqlalchemy.exc import IntegrityError

from consent_service import db, logcontext
from consent_service.biometrics.service import ENROLL_TASKS, FaceMatching
from consent_service.biometrics.shards import ShardsUnavailable
from consent_service.biometrics.voice_service import VoiceMatching
from consent_service.gate import pipeline
from consent_service.gate.decisions import Signing
from consent_service.gate.service import PROCESS_JOB
from consent_service.gate.sweep import find_stale, mark_published
from consent_service.queues import MATCHING_QUEUE
from consent_service.runtime import services
from consent_service.storage import MediaStore
from consent_service.tasking import queue_backlog
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Modality

if TYPE_CHECKING:  # the container's type only: the composition root sits above the gate
    from consent_service.services import Services

log = logging.getLogger(__name__)


def signing(svc: Services) -> Signing:
    return Signing(
        audit_key=svc.audit_key,
        signer=svc.decision_signer,
        pseudonyms=svc.pseudonyms,
        envelope=svc.envelope,  # keeps unnamed people's faces for consent requests
        finding_face_ttl=timedelta(seconds=svc.settings.consent_request_finding_ttl),
    )


@shared_task(name=PROCESS_JOB, ignore_result=True, bind=True)
def process_job(task: Task, job_id: str) -> str:
    svc = services()
    settings = svc.settings
    with logcontext.bound(job_id=job_id):  # every line of this job names it
        try:
            return decide(
                job_id,
                pipeline.Delivery(task.request.id, timedelta(seconds=settings.task_time_limit)),
                svc.media_store,
                svc.face_matching,
                svc.voice_matching,
                signing(svc),
                settings.job_max_attempts,
            )
        except ShardsUnavailable as exc:
            # Nothing was recorded. The same message id comes back (a retry keeps the task's
            # id, so the claim's lease is this delivery's own) and counts the next attempt; the
            # last attempt fails the job (`decide`): it never waits forever, and is never
            # decided from part of the gallery.
            log.warning("job %s: %s; sent again", job_id, exc)
            raise task.retry(
                countdown=settings.gallery_shard_timeout,
                max_retries=settings.job_max_attempts,
                exc=exc,
            ) from exc


def decide(
    job_id: str,
    delivery: pipeline.Delivery,
    store: MediaStore,
    faces: FaceMatching,
    voices: VoiceMatching | None,
    signing: Signing,
    max_attempts: int,
) -> str:
    """Claim, analyse, record: safe to run any number of times, concurrently; decides once."""
    with db.unit_of_work() as s:
        claimed = pipeline.claim(s, job_id, delivery, max_attempts, signing.audit_key, store)
    if isinstance(claimed, pipeline.Ended):
        return claimed.status
    media = pipeline.load(store, claimed)
    with db.unit_of_work() as s:
        matcher = pipeline.matcher(s, claimed.operation, faces, voices)
    try:
        analysis = pipeline.analyse(media, claimed.operation, matcher)
    except ShardsUnavailable:
        if claimed.attempts < max_attempts:
            raise  # `process_job` sends the job again
        # The last attempt: the job ends failed, saying why, rather than waiting forever.
        with db.unit_of_work() as s:
            return pipeline.fail(s, job_id, store, signing.audit_key, pipeline.SHARDS_UNAVAILABLE)
    try:
        with db.unit_of_work() as s:
            return pipeline.record(s, job_id, analysis, signing, store)
    except IntegrityError:  # decided first by a concurrent delivery, or refused for good
        log.warning("recording job %s was refused", job_id, exc_info=True)
        with db.unit_of_work() as s:
            return pipeline.after_refusal(s, job_id, store, signing.audit_key)


@shared_task(name="sweep.stale_work", ignore_result=True)
def sweep_stale_work() -> int:
    """Publish again the jobs and enrollments whose task message may have been lost, each at
    most once per period (`published_at`, recorded in the same unit of work)."""
    settings = services().settings
    now = utcnow()
    with db.unit_of_work() as s:
        stale = find_stale(
            s,
            now,
            queued_for=timedelta(seconds=settings.outbox_sweep_after),
            # Longer than the broker's own redelivery of unacknowledged work (twice the limit).
            processing_for=timedelta(seconds=settings.task_time_limit * 3),
            # A backlog the broker still holds is not lost: not sent again.
            waiting=queue_backlog(settings.celery_broker_url, MATCHING_QUEUE),
        )
        mark_published(s, stale, now)
        for job_id in stale.job_ids:  # sent when the unit of work finishes
            db.publish(s, PROCESS_JOB, job_id)
        for enrollment_id, modality in stale.enrollments:
            db.publish(s, ENROLL_TASKS[Modality(modality)], enrollment_id)
    return len(stale.job_ids) + len(stale.enrollments)
