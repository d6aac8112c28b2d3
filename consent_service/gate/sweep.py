"""The outbox sweep: work whose task message was lost (broker down at publish time, broker
restarted with a backlog) is found by its row and published again. Redelivery is harmless:
jobs and enrollments are decided once whatever the number of deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, or_, select

from consent_service.biometrics.models import Enrollment
from consent_service.gate.models import GateJob
from consent_service.vocabulary import EnrollmentStatus, JobStatus


@dataclass(frozen=True)
class Stale:
    job_ids: list[str]
    enrollments: list[tuple[str, str]]  # (enrollment id, modality)


def find_stale(
    session: Session, now: datetime, queued_for: timedelta, processing_for: timedelta
) -> Stale:
    """Jobs queued longer than `queued_for`, or processing longer than `processing_for` (their
    worker died and the broker forgot them), and enrollments pending longer than `queued_for`."""
    jobs = session.exec(
        select(GateJob.id)
        .where(
            or_(
                (GateJob.status == JobStatus.QUEUED.value)
                & (GateJob.updated_at < now - queued_for),
                (GateJob.status == JobStatus.PROCESSING.value)
                & (GateJob.updated_at < now - processing_for),
            )
        )
        .order_by(col(GateJob.created_at))
    ).all()
    enrollments = session.exec(
        select(Enrollment.id, Enrollment.modality)
        .where(
            Enrollment.status == EnrollmentStatus.PENDING.value,
            Enrollment.created_at < now - queued_for,
        )
        .order_by(col(Enrollment.created_at))
    ).all()
    return Stale(list(jobs), [(e, m) for e, m in enrollments])
