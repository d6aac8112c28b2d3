"""What a provider may see of its job (the API's `JobPublic`, the portal's job page): decision,
reasons, findings; never biometrics."""

from __future__ import annotations

from sqlmodel import Session, col, select

from consent_service.accounts.models import Subject
from consent_service.gate.claims import aigc_label, subject_reference
from consent_service.gate.decisions import media_of
from consent_service.gate.models import Decision, Finding, GateJob
from consent_service.gate.schemas import FindingPublic, JobPublic, MediaPublic
from consent_service.providers.models import Provider
from consent_service.timeutil import as_utc
from consent_service.vocabulary import DecisionKind, JobStatus, Operation, Outcome, Role


def job_view(session: Session, job: GateJob, pseudonym_key: bytes) -> JobPublic:
    return decided_job_view(session, job, session.get(Decision, job.id), pseudonym_key)


def decided_job_view(
    session: Session, job: GateJob, decision: Decision | None, pseudonym_key: bytes
) -> JobPublic:
    """`job_view` for a caller that has read the job's decision already (`find_job`)."""
    # Each finding with its person's public id, in one query.
    rows = session.exec(
        select(Finding, Subject.public_id)
        .outerjoin(Subject, col(Subject.id) == Finding.subject_id)
        .where(Finding.job_id == job.id, Finding.revision == (decision.revision if decision else 1))
        .order_by(col(Finding.id))
    ).all()
    findings = [f for f, _ in rows]
    public_ids = {f.subject_id: public_id for f, public_id in rows if public_id is not None}
    label = None
    if decision and decision.jti and decision.decision == DecisionKind.ALLOW:
        provider = session.get(Provider, job.provider_id)
        assert provider is not None  # a job's provider is never deleted
        label = aigc_label(provider.name, job.id, decision.jti)
    return JobPublic(
        id=job.id,
        status=JobStatus(job.status),
        operation=Operation(job.operation),
        created_at=as_utc(job.created_at),
        attempts=job.attempts,
        error=job.error,
        decision=DecisionKind(decision.decision) if decision else None,
        reasons=decision.reasons if decision else [],
        token=decision.token if decision else None,
        label=label,
        media=[
            MediaPublic(
                position=i.position,
                role=Role(i.role),
                filename=i.filename,
                sha256=i.sha256,
                error=i.rejected,
            )
            for i in media_of(session, job.id)
        ],
        findings=[
            FindingPublic(
                media=f.media_position,
                role=Role(f.role),
                outcome=Outcome(f.outcome),
                subject_ref=(
                    subject_reference(pseudonym_key, job.provider_id, public_ids[f.subject_id])
                    if f.subject_id in public_ids
                    else None
                ),
                box=f.box,
            )
            for f in findings
        ],
    )
