"""The outbox sweep finds work whose task message may have been lost, and nothing else."""

from __future__ import annotations

from datetime import timedelta

from consent_service.gate.sweep import due_again, find_stale, mark_published
from consent_service.timeutil import utcnow


def test_finds_only_jobs_and_enrollments_stuck_past_their_period(session, factories):
    now = utcnow()
    provider = factories.ProviderFactory()
    subject = factories.SubjectFactory()

    def job(status: str, age_s: int) -> str:
        at = now - timedelta(seconds=age_s)  # published when it was submitted or claimed
        row = factories.GateJobFactory(
            provider=provider, status=status, created_at=at, updated_at=at, published_at=at
        )
        return row.id

    def enrollment(status: str, age_s: int) -> str:
        at = now - timedelta(seconds=age_s)
        row = factories.EnrollmentFactory(
            subject=subject, status=status, created_at=at, published_at=at
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


PERIOD, WORKER_TIME = timedelta(seconds=60), timedelta(seconds=900)


def _stale(session, now):
    return find_stale(session, now, queued_for=PERIOD, processing_for=WORKER_TIME)


def test_a_stale_job_is_published_at_most_once_per_period(session, factories):
    now = utcnow()
    at = now - timedelta(seconds=120)
    job = factories.GateJobFactory(status="queued", created_at=at, updated_at=at, published_at=at)
    session.flush()
    stale = _stale(session, now)
    assert stale.job_ids == [job.id]
    mark_published(session, stale, now)
    session.expire_all()
    assert _stale(session, now).job_ids == []  # the sweep running twice in a period
    assert _stale(session, now + timedelta(seconds=59)).job_ids == []
    # It had waited 120 s before this publish: the next one waits as long, not one period.
    assert _stale(session, now + timedelta(seconds=119)).job_ids == []
    assert _stale(session, now + timedelta(seconds=120)).job_ids == [job.id]


def test_a_backlog_is_not_flooded_with_copies(session, factories):
    """1,000 queued jobs the workers have not reached for 20 periods: before `published_at`
    the sweep sent each one again every period (21 messages per job); now each is sent again
    with a doubling wait (1 + 4 here: after 2, 4, 8, 16 periods), never twice in one period."""
    start = utcnow()
    provider = factories.ProviderFactory()
    jobs = [
        factories.GateJobFactory(
            provider=provider, status="queued", created_at=start, updated_at=start
        ).id
        for _ in range(1000)
    ]
    session.flush()
    sent = dict.fromkeys(jobs, 1)  # at submission
    for period in range(1, 21):
        now = start + period * PERIOD
        stale = _stale(session, now)
        mark_published(session, stale, now)
        session.expire_all()
        for job_id in stale.job_ids:
            sent[job_id] += 1
    assert set(sent.values()) == {5}


def test_a_running_enrollment_is_left_to_its_worker(session, factories):
    """A 3-minute enrollment (claimed 180 s ago, still pending) is not published again, so it
    gets no extra attempt and cannot be failed by the sweep; one whose worker died long ago is."""
    now = utcnow()
    subject = factories.SubjectFactory()

    def enrollment(created_s: int, claimed_s: int | None) -> str:
        at = now - timedelta(seconds=created_s)
        claimed = None if claimed_s is None else now - timedelta(seconds=claimed_s)
        return factories.EnrollmentFactory(
            subject=subject, created_at=at, published_at=at, claimed_at=claimed, attempts=1
        ).id

    enrollment(200, 180)  # running for three minutes
    dead = enrollment(2000, 1000)  # claimed longer ago than a worker may take
    never_claimed = enrollment(120, None)  # its message was lost
    session.flush()
    assert sorted(e for e, _ in _stale(session, now).enrollments) == sorted([dead, never_claimed])


def test_rows_from_before_published_at_read_their_creation_time():
    now = utcnow()
    assert due_again(now - timedelta(seconds=61), None, now, PERIOD)
    assert not due_again(now - timedelta(seconds=59), None, now, PERIOD)


def test_a_backlog_the_broker_still_holds_is_not_published_again(session, factories):
    """The broker says as many messages wait as there are unstarted jobs: none was lost, so
    nothing queued is sent again (one message per job however long the backlog takes); fewer
    (the broker restarted empty) and the stale ones are; a dead worker's job always is."""
    now = utcnow()
    at = now - timedelta(seconds=600)
    queued = [
        factories.GateJobFactory(status="queued", created_at=at, updated_at=at, published_at=at).id
        for _ in range(3)
    ]
    dead = factories.GateJobFactory(
        status="processing",
        created_at=at,
        updated_at=now - timedelta(seconds=1000),
        published_at=at,
    ).id
    factories.GateJobFactory(status="queued")  # being submitted: its message not sent yet
    session.flush()

    def stale(waiting):
        return find_stale(session, now, PERIOD, WORKER_TIME, waiting=waiting).job_ids

    assert stale(3) == [dead]
    assert sorted(stale(0)) == sorted([*queued, dead])  # a broker restarted empty
    assert sorted(stale(None)) == sorted([*queued, dead])  # a broker that cannot tell
