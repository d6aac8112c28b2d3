"""Two requests with one Idempotency-Key: the one that loses the UNIQUE race answers with the
winner's row, and only its own attempt (the row and the task it registered) is undone."""

from __future__ import annotations

from sqlmodel import select

from consent_service import db
from consent_service.api_contract import idempotency
from consent_service.audit.models import AuditHead
from consent_service.gate.models import GateJob
from consent_service.providers.service import create_provider


def test_the_loser_of_a_key_race_answers_with_the_winners_row(session, reopen):
    provider = create_provider(session, "acme")
    db.finish(session)
    winner = reopen()  # a parallel request with the same key commits first
    first = GateJob(provider_id=provider.id, operation="face_swap", idempotency_key="K")
    winner.add(first)
    winner.commit()

    session.add(AuditHead(id=1, seq=0, hash="before"))  # this request's earlier work stays
    calls = []

    def create():
        calls.append(len(calls))
        if len(calls) == 1:  # our lookup ran before the winner committed: we insert too
            job = GateJob(provider_id=provider.id, operation="face_swap", idempotency_key="K")
            session.add(job)
            db.publish(session, "gate.process_job", job.id)
            return job, True
        found = session.exec(select(GateJob).where(GateJob.idempotency_key == "K")).one()
        return found, False

    job, created = idempotency.create_once(session, create)

    assert (job.id, created, len(calls)) == (first.id, False, 2)
    assert db.registered_tasks(session) == []  # the undone attempt sends nothing
    db.finish(session)
    check = reopen()
    assert [j.id for j in check.exec(select(GateJob))] == [first.id]
    assert check.get(AuditHead, 1) is not None
