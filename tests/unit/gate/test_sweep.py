"""The outbox sweep finds work whose task message may have been lost, and nothing else."""

from __future__ import annotations

from datetime import timedelta

from consent_service.gate.sweep import find_stale
from consent_service.timeutil import utcnow


def test_finds_only_jobs_and_enrollments_stuck_past_their_period(session, factories):
    now = utcnow()
    provider = factories.ProviderFactory()
    subject = factories.SubjectFactory()

    def job(status: str, age_s: int) -> str:
        row = factories.GateJobFactory(
            provider=provider, status=status, updated_at=now - timedelta(seconds=age_s)
        )
        return row.id

    def enrollment(status: str, age_s: int) -> str:
        row = factories.EnrollmentFactory(
            subject=subject, status=status, created_at=now - timedelta(seconds=age_s)
        )
        return row.id

    old_queued = job("queued", 120)
    job("queued", 10)  # just published: the worker may simply not have got to it yet
    lost_processing = job("processing", 2000)
    job("processing", 120)  # still within the task's time
    job("decided", 5000)
    job("failed", 5000)
    old_pending = enrollment("pending", 120)
    enrollment("pending", 5)
    enrollment("completed", 5000)
    session.flush()

    stale = find_stale(
        session, now, queued_for=timedelta(seconds=60), processing_for=timedelta(seconds=900)
    )
    assert sorted(stale.job_ids) == sorted([old_queued, lost_processing])
    assert stale.enrollments == [(old_pending, "face")]
