"""What a provider may see of its job (the API's `JobPublic`, the portal's job page): decision,
reasons, findings; never biometrics.

Providers poll their jobs, so this is the API's hottest read: two statements built once (bound
parameters, so SQLAlchemy builds and compiles each once per process) read plain rows, no ORM
entities. One reads the job with its provider's name, its decision and the findings of that
decision's revision with their people; the other the media."""

from __future__ import annotations

from sqlalchemy import Table, bindparam, func, select
from sqlmodel import Session

from consent_service.accounts.models import Subject
from consent_service.errors import NotFound
from consent_service.gate.claims import aigc_label, reference, token_digest
from consent_service.gate.models import Decision, Finding, GateJob, MediaItem
from consent_service.gate.schemas import FindingPublic, JobPublic, MediaPublic
from consent_service.gate.service import require_job_id
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


def _table(model: type) -> Table:
    return model.__table__  # type: ignore[attr-defined]  # SQLModel's table models have one


_job, _decision, _provider = _table(GateJob), _table(Decision), _table(Provider)
_finding, _subject, _media = _table(Finding), _table(Subject), _table(MediaItem)

# One row per finding of the decision's revision (revision 1 before a decision), or one row
# with no finding; none when the job is not this provider's.
_JOB_AND_FINDINGS = (
    select(
        _job.c.id,
        _job.c.status,
        _job.c.operation,
        _job.c.purpose,
        _job.c.purpose_detail,
        _job.c.created_at,
        _job.c.attempts,
        _job.c.error,
        _provider.c.name.label("provider_name"),
        _decision.c.decision,
        _decision.c.reasons,
        _decision.c.assurance_required,
        _decision.c.token,
        _finding.c.id.label("finding_id"),
        _finding.c.media_position,
        _finding.c.role,
        _finding.c.outcome,
        _finding.c.box,
        _finding.c.assurance,
        _finding.c.uncovered_purpose,
        _subject.c.public_id.label("subject_public_id"),
        _subject.c.created_at.label("subject_created_at"),
    )
    .select_from(
        _job.join(_provider, _provider.c.id == _job.c.provider_id)
        .outerjoin(_decision, _decision.c.job_id == _job.c.id)
        .outerjoin(
            _finding,
            (_finding.c.job_id == _job.c.id)
            & (_finding.c.revision == func.coalesce(_decision.c.revision, 1)),
        )
        .outerjoin(_subject, _subject.c.id == _finding.c.subject_id)
    )
    .where(_job.c.id == bindparam("job_id"), _job.c.provider_id == bindparam("provider_id"))
    .order_by(_finding.c.id)
)
_MEDIA = (
    select(_media.c.position, _media.c.role, _media.c.filename, _media.c.sha256, _media.c.rejected)
    .where(_media.c.job_id == bindparam("job_id"))
    .order_by(_media.c.position)
)


def job_view(session: Session, provider_id: str, job_id: str, pseudonyms: Pseudonyms) -> JobPublic:
    """The provider's job as it may see it (what this session has flushed); another provider's
    job id is a NotFound, like a missing one."""
    require_job_id(job_id)
    conn = session.connection()  # the session's transaction: rows it has flushed included
    rows = conn.execute(_JOB_AND_FINDINGS, {"job_id": job_id, "provider_id": provider_id}).all()
    if not rows:
        raise NotFound("No such job.")
    job = rows[0]
    label = None
    if job.token and job.decision == DecisionKind.ALLOW:
        label = aigc_label(job.provider_name, job.id, token_digest(job.token))
    media = conn.execute(_MEDIA, {"job_id": job_id}).all()
    return JobPublic(
        id=job.id,
        status=JobStatus(job.status),
        operation=Operation(job.operation),
        purpose=job.purpose,
        purpose_detail=job.purpose_detail,
        created_at=as_utc(job.created_at),
        attempts=job.attempts,
        error=job.error,
        decision=DecisionKind(job.decision) if job.decision else None,
        reasons=[Reason(r) for r in job.reasons] if job.decision else [],
        assurance_required=Assurance(job.assurance_required) if job.assurance_required else None,
        token=job.token,
        label=label,
        media=[
            MediaPublic(
                position=m.position,
                role=Role(m.role),
                filename=m.filename,
                sha256=m.sha256,
                error=m.rejected,
            )
            for m in media
        ],
        findings=[
            FindingPublic(
                media=f.media_position,
                role=Role(f.role),
                outcome=Outcome(f.outcome),
                subject_ref=(
                    reference(pseudonyms, provider_id, f.subject_public_id, f.subject_created_at)
                    if f.subject_public_id is not None
                    else None
                ),
                box=f.box,
                assurance=Assurance(f.assurance) if f.assurance else None,
                uncovered_purpose=f.uncovered_purpose,
            )
            for f in rows
            if f.finding_id is not None
        ],
    )
