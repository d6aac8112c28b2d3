"""What a provider may see of its job (the API's `JobPublic`, the portal's job page): decision,
reasons, findings; never biometrics."""

from __future__ import annotations

from sqlmodel import Session, col, select

from consent_service.accounts.models import Subject
from consent_service.gate.claims import aigc_label, subject_reference, token_digest
from consent_service.gate.decisions import media_of
from consent_service.gate.models import Decision, Finding, GateJob
from consent_service.gate.schemas import FindingPublic, JobPublic, MediaPublic
from consent_service.keyring import Pseudonyms
from consent_service.providers.models import Provider
from consent_service.timeutil import as_utc
from consent_service.vocabulary import (
    Assurance,
    DecisionKind,
    JobStatus,
    Operation,
    Outcome,
    Reason,
    Role,
)


def job_view(session: Session, job: GateJob, pseudonyms: Pseudonyms) -> JobPublic:
    return decided_job_view(session, job, session.get(Decision, job.id), pseudonyms)


def decided_job_view(
    session: Session, job: GateJob, decision: Decision | None, pseudonyms: Pseudonyms
) -> JobPublic:
    """`job_view` for a caller that has read the job's decision already (`find_job`)."""
    # Each finding with its person, in one query.
    rows = session.exec(
        select(Finding, Subject)
        .outerjoin(Subject, col(Subject.id) == Finding.subject_id)
        .where(Finding.job_id == job.id, Finding.revision == (decision.revision if decision else 1))
        .order_by(col(Finding.id))
    ).all()
    findings = [f for f, _ in rows]
    subjects = {f.subject_id: sub for f, sub in rows if sub is not None}
    label = None
    if decision and decision.token and decision.decision == DecisionKind.ALLOW:
        provider = session.get(Provider, job.provider_id)
        assert provider is not None  # a job's provider is never deleted
        label = aigc_label(provider.name, job.id, token_digest(decision.token))
    return JobPublic(
        id=job.id,
        status=JobStatus(job.status),
        operation=Operation(job.operation),
        purpose=job.purpose,
        purpose_detail=job.purpose_detail,
        created_at=as_utc(job.created_at),
        attempts=job.attempts,
        error=job.error,
        decision=DecisionKind(decision.decision) if decision else None,
        reasons=[Reason(r) for r in decision.reasons] if decision else [],
        assurance_required=(
            Assurance(decision.assurance_required)
            if decision and decision.assurance_required
            else None
        ),
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
                    subject_reference(pseudonyms, job.provider_id, subjects[f.subject_id])
                    if f.subject_id in subjects
                    else None
                ),
                box=f.box,
                assurance=Assurance(f.assurance) if f.assurance else None,
                uncovered_purpose=f.uncovered_purpose,
            )
            for f in findings
        ],
    )
