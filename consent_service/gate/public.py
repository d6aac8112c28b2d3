"""What a provider may see of its job (the API's `JobPublic`, the portal's job page): decision,
reasons, findings; never biometrics.

Providers poll their jobs, so this is the API's hottest read: one statement built once (bound
parameters, so SQLAlchemy builds and compiles it once per process) reads plain rows, no ORM
entities: the job with its provider's name, its decision and the findings of that decision's
revision with their people, then (UNION ALL) the job's media."""

from __future__ import annotations

from sqlalchemy import Table, bindparam, func, literal_column, null, select, union_all
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

_JOB_COLUMNS = (
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
_MEDIA_COLUMNS = (
    _media.c.position,
    _media.c.role.label("media_role"),
    _media.c.filename,
    _media.c.sha256,
    _media.c.rejected,
)
_OWN_JOB = (_job.c.id == bindparam("job_id")) & (_job.c.provider_id == bindparam("provider_id"))


def _nulls(columns) -> list:
    return [null().label(c.name) for c in columns]


# Part 0: one row per finding of the decision's revision (revision 1 before a decision), or one
# row with no finding. Part 1: one row per media item. None at all when the job is not this
# provider's. The first part's columns type the result, so the media's are plain values there
# (integers and text: nothing to convert).
_JOB_VIEW = union_all(
    select(literal_column("0").label("part"), *_JOB_COLUMNS, *_nulls(_MEDIA_COLUMNS))
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
    .where(_OWN_JOB),
    select(literal_column("1").label("part"), *_nulls(_JOB_COLUMNS), *_MEDIA_COLUMNS)
    .select_from(_media.join(_job, _job.c.id == _media.c.job_id))
    .where(_OWN_JOB),
).order_by("part", "finding_id", "position")


def job_view(session: Session, provider_id: str, job_id: str, pseudonyms: Pseudonyms) -> JobPublic:
    """The provider's job as it may see it (what this session has flushed); another provider's
    job id is a NotFound, like a missing one."""
    require_job_id(job_id)
    conn = session.connection()  # the session's transaction: rows it has flushed included
    rows = conn.execute(_JOB_VIEW, {"job_id": job_id, "provider_id": provider_id}).all()
    if not rows:
        raise NotFound("No such job.")
    job = rows[0]
    findings = [r for r in rows if r.part == 0 and r.finding_id is not None]
    media = [r for r in rows if r.part == 1]
    label = None
    if job.token and job.decision == DecisionKind.ALLOW:
        label = aigc_label(job.provider_name, job.id, token_digest(job.token))
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
                role=Role(m.media_role),
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
            for f in findings
        ],
    )
