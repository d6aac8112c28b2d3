"""The outbox sweep: work whose task message was lost (broker down at publish time, broker
restarted with a backlog) is found by its row and published again. Redelivery is harmless:
jobs and enrollments are decided once whatever the number of deliveries.

Every publish is recorded (`published_at`), so a stale row is published at most once per
period, and the wait before the next one grows with the time the row has waited already
(doubling); and queued work is not published again at all while the broker still holds at
least as many messages as there is unstarted work (`waiting`): a backlog the workers take long
to drain is not flooded with copies of messages that are only queued, not lost. An enrollment
a worker has claimed is running, not lost: it is published again only once it has been claimed
for longer than a worker may take."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, false, func, true, update
from sqlmodel import Session, col, or_, select

from consent_service.biometrics.models import Enrollment
from consent_service.gate.models import GateJob
from consent_service.timeutil import as_utc
from consent_service.vocabulary import EnrollmentStatus, JobStatus


@dataclass(frozen=True)
class Stale:
    job_ids: list[str]
    enrollments: list[tuple[str, str]]  # (enrollment id, modality)


def due_again(
    created: datetime, published: datetime | None, now: datetime, period: timedelta
) -> bool:
    """Whether a row last published at `published` (None: at `created`, before the column
    existed) is due again: a period has passed, and at least as long as it had waited before
    that publish (so the copies of one message are at most about log2(wait / period) + 1)."""
    last = as_utc(published or created)
    return as_utc(now) - last >= max(period, last - as_utc(created))


def find_stale(
    session: Session,
    now: datetime,
    queued_for: timedelta,
    processing_for: timedelta,
    waiting: int | None = None,
) -> Stale:
    """Jobs queued longer than `queued_for`, or processing longer than `processing_for` (their
    worker died and the broker forgot them); enrollments never claimed after `queued_for`, or
    claimed longer than `processing_for` ago and still pending. Only rows `due_again`.

    `waiting`: the messages the broker says it holds for the queue, waiting or handed to a
    worker and not yet acknowledged (None: it cannot tell). When they are at least as many as
    the queued jobs and unclaimed enrollments sent a period ago or more, none of those messages
    was lost, only not reached yet (a backlog): they are not published again. Fewer (a broker
    restarted empty) and the stale ones are. (Messages of work submitted since count too, so a
    loss hidden behind as many new messages is found once the backlog shrinks.)"""
    # Whether unstarted work may have lost its message (else only a processing one may).
    settled = now - queued_for  # work sent before this has its message in the broker, or lost
    maybe_lost = (
        false() if waiting is not None and waiting >= _unstarted(session, settled) else true()
    )
    not_recent = or_(
        col(GateJob.published_at).is_(None), col(GateJob.published_at) < now - queued_for
    )
    jobs = session.exec(
        select(GateJob.id, GateJob.created_at, GateJob.published_at)
        .where(
            not_recent,
            or_(
                and_(
                    col(GateJob.status) == JobStatus.QUEUED.value,
                    col(GateJob.updated_at) < now - queued_for,
                    maybe_lost,
                ),
                and_(
                    col(GateJob.status) == JobStatus.PROCESSING.value,
                    col(GateJob.updated_at) < now - processing_for,
                ),
            ),
        )
        .order_by(col(GateJob.created_at))
    ).all()
    enrollments = session.exec(
        select(Enrollment.id, Enrollment.modality, Enrollment.created_at, Enrollment.published_at)
        .where(
            Enrollment.status == EnrollmentStatus.PENDING.value,
            or_(
                col(Enrollment.published_at).is_(None),
                col(Enrollment.published_at) < now - queued_for,
            ),
            or_(
                col(Enrollment.claimed_at).is_(None)
                & (Enrollment.created_at < now - queued_for)
                & maybe_lost,
                col(Enrollment.claimed_at) < now - processing_for,  # its worker died
            ),
        )
        .order_by(col(Enrollment.created_at))
    ).all()
    return Stale(
        [j for j, created, published in jobs if due_again(created, published, now, queued_for)],
        [
            (e, m)
            for e, m, created, published in enrollments
            if due_again(created, published, now, queued_for)
        ],
    )


def _unstarted(session: Session, sent_before: datetime) -> int:
    """Jobs and enrollments none has claimed yet, sent before `sent_before` (so their message
    was sent, not merely about to be: work being submitted now is left out)."""
    jobs = session.exec(
        select(func.count())
        .select_from(GateJob)
        .where(
            GateJob.status == JobStatus.QUEUED.value,
            func.coalesce(GateJob.published_at, GateJob.created_at) < sent_before,
        )
    ).one()
    enrollments = session.exec(
        select(func.count())
        .select_from(Enrollment)
        .where(
            Enrollment.status == EnrollmentStatus.PENDING.value,
            col(Enrollment.claimed_at).is_(None),
            func.coalesce(Enrollment.published_at, Enrollment.created_at) < sent_before,
        )
    ).one()
    return jobs + enrollments


def mark_published(session: Session, stale: Stale, now: datetime) -> None:
    """Record that the sweep publishes these rows now (in the unit of work that sends them)."""
    if stale.job_ids:
        session.execute(
            update(GateJob)
            .where(col(GateJob.id).in_(stale.job_ids))
            .values(published_at=now)
            .execution_options(synchronize_session=False)
        )
    if stale.enrollments:
        session.execute(
            update(Enrollment)
            .where(col(Enrollment.id).in_([e for e, _ in stale.enrollments]))
            .values(published_at=now)
            .execution_options(synchronize_session=False)
        )
