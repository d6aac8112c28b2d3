"""The retention purges, one per class of data the schedule says is purged here: what is due
(`due`, for the report) and its destruction (`purge`), each class audited with its count."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import delete, func, or_, update
from sqlmodel import Session, col, select

from consent_service.accounts.models import Subject
from consent_service.audit import service as audit
from consent_service.biometrics.models import BiometricTemplate
from consent_service.complaints import service as complaints
from consent_service.consent.models import ConsentGrant
from consent_service.consent_requests.models import ConsentRequest
from consent_service.crypto import KeySource
from consent_service.gate.models import (
    Decision,
    DecisionRevision,
    Finding,
    FindingFace,
    GateJob,
    MediaItem,
)
from consent_service.retention.schedule import schedule
from consent_service.settings import Settings
from consent_service.storage import MediaStore
from consent_service.timeutil import as_utc
from consent_service.vocabulary import DeliveryStatus, GrantStatus, JobStatus
from consent_service.webhooks.models import WebhookDelivery

ACTOR = "system:retention"
FINISHED_JOBS = (JobStatus.DECIDED.value, JobStatus.FAILED.value)
SENT = (DeliveryStatus.DELIVERED.value, DeliveryStatus.FAILED.value)


def _chunks(ids: Sequence, size: int = 500):
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


# ---------------------------------------------------------------------------- jobs
def _due_jobs(session: Session, cutoff: datetime) -> list[str]:
    return list(
        session.exec(
            select(GateJob.id).where(
                col(GateJob.created_at) < cutoff, col(GateJob.status).in_(FINISHED_JOBS)
            )
        )
    )


def _purge_jobs(session: Session, ids: list[str]) -> dict[str, int]:
    """Delete the jobs with everything hanging off them; a consent request opened from a job
    stays (it is the person's), without the link to the job."""
    findings = 0
    for part in _chunks(ids):
        session.exec(
            update(ConsentRequest)
            .where(col(ConsentRequest.job_id).in_(part))
            .values(job_id=None, finding_id=None)
        )
        session.exec(delete(FindingFace).where(col(FindingFace.job_id).in_(part)))
        findings += session.exec(
            select(func.count()).select_from(Finding).where(col(Finding.job_id).in_(part))
        ).one()
        for table in (Finding, MediaItem, DecisionRevision, Decision):
            session.exec(delete(table).where(col(table.job_id).in_(part)))
        session.exec(delete(GateJob).where(col(GateJob.id).in_(part)))
    return {"count": len(ids), "findings": findings}


# ---------------------------------------------------------------------------- grant evidence
def _newest_versions():
    return (
        select(ConsentGrant.grant_id, func.max(ConsentGrant.version).label("v"))
        .group_by(col(ConsentGrant.grant_id))
        .subquery()
    )


# The statuses of a grant version still in force: a consent, or a refusal that still denies.
_IN_FORCE = (GrantStatus.ACTIVE.value, GrantStatus.REFUSED.value)


def _has_evidence():
    return or_(col(ConsentGrant.ip).is_not(None), col(ConsentGrant.user_agent).is_not(None))


def _due_grant_evidence(session: Session, cutoff: datetime) -> list[str]:
    """Grants whose newest version ended them (withdrawn, expired) before `cutoff` and that
    still hold an IP address or a user agent. A refusal in force has not ended: it still
    denies, and its evidence shows who made it."""
    newest = _newest_versions()
    ended = (
        select(ConsentGrant.grant_id)
        .join(
            newest,
            (col(ConsentGrant.grant_id) == newest.c.grant_id)
            & (col(ConsentGrant.version) == newest.c.v),
        )
        .where(
            col(ConsentGrant.status).not_in(_IN_FORCE),
            col(ConsentGrant.created_at) < cutoff,
        )
    )
    return list(
        session.exec(
            select(ConsentGrant.grant_id)
            .where(
                col(ConsentGrant.grant_id).in_(ended),
                _has_evidence(),
            )
            .distinct()
        )
    )


def _purge_grant_evidence(session: Session, ids: list[str]) -> dict[str, int]:
    versions = 0
    for part in _chunks(ids):
        versions += session.exec(
            update(ConsentGrant)
            .where(col(ConsentGrant.grant_id).in_(part))
            .where(_has_evidence())
            .values(ip=None, user_agent=None)
        ).rowcount
    return {"count": len(ids), "versions": versions}


# ---------------------------------------------------------------------------- webhook bodies
def _due_webhook_bodies(session: Session, cutoff: datetime) -> list[str]:
    return list(
        session.exec(
            select(WebhookDelivery.id).where(
                col(WebhookDelivery.status).in_(SENT),
                col(WebhookDelivery.created_at) < cutoff,
                col(WebhookDelivery.body) != "",
            )
        )
    )


def _purge_webhook_bodies(session: Session, ids: list[str]) -> dict[str, int]:
    """Empty the bodies; the delivery's event, status and times stay for the provider's log."""
    for part in _chunks(ids):
        session.exec(
            update(WebhookDelivery).where(col(WebhookDelivery.id).in_(part)).values(body="")
        )
    return {"count": len(ids)}


# ---------------------------------------------------------------------------- templates
def _due_templates(session: Session, cutoff: datetime) -> list[str]:
    """Templates of people whose last interaction (an enrolled template, a grant version, a job
    that found them) is older than `cutoff`."""
    last = {}
    for sid, at in session.exec(
        select(BiometricTemplate.subject_id, func.max(BiometricTemplate.created_at)).group_by(
            col(BiometricTemplate.subject_id)
        )
    ):
        last[sid] = at
    if not last:
        return []
    for sid, at in session.exec(
        select(ConsentGrant.subject_id, func.max(ConsentGrant.created_at))
        .where(col(ConsentGrant.subject_id).in_(list(last)))
        .group_by(col(ConsentGrant.subject_id))
    ):
        last[sid] = max(_aware(last[sid]), _aware(at))
    for found, at in session.exec(
        select(Finding.subject_id, func.max(GateJob.created_at))
        .join(GateJob, col(GateJob.id) == col(Finding.job_id))
        .where(col(Finding.subject_id).in_(list(last)))
        .group_by(col(Finding.subject_id))
    ):
        if found is not None:
            last[found] = max(_aware(last[found]), _aware(at))
    idle = [sid for sid, at in last.items() if _aware(at) < cutoff]
    if not idle:
        return []
    return list(
        session.exec(
            select(BiometricTemplate.id).where(col(BiometricTemplate.subject_id).in_(idle))
        )
    )


def _purge_templates(session: Session, ids: list[str]) -> dict[str, int]:
    """One by one, so each removal is logged for the workers' galleries (TemplateChange)."""
    people = set()
    for part in _chunks(ids):
        for template in session.exec(
            select(BiometricTemplate).where(col(BiometricTemplate.id).in_(part))
        ):
            people.add(template.subject_id)
            session.delete(template)
    return {"count": len(ids), "people": len(people)}


def _due_templates_withdrawn(session: Session, cutoff: datetime) -> list[str]:
    """Templates of people who chose destruction on withdrawal, have had a grant and have none
    in force now (every grant's newest version withdrawn or expired). A refusal in force keeps
    them: without the templates the gate could not recognise whom it protects."""
    chose = select(Subject.id).where(col(Subject.destroy_templates_on_withdrawal))
    newest = _newest_versions()
    in_force = (
        select(ConsentGrant.subject_id)
        .join(
            newest,
            (col(ConsentGrant.grant_id) == newest.c.grant_id)
            & (col(ConsentGrant.version) == newest.c.v),
        )
        .where(col(ConsentGrant.status).in_(_IN_FORCE))
    )
    had_one = select(ConsentGrant.subject_id).where(col(ConsentGrant.created_at) < cutoff)
    return list(
        session.exec(
            select(BiometricTemplate.id).where(
                col(BiometricTemplate.subject_id).in_(chose),
                col(BiometricTemplate.subject_id).in_(had_one),
                col(BiometricTemplate.subject_id).not_in(in_force),
            )
        )
    )


def _aware(at: datetime) -> datetime:
    return as_utc(at)


# ---------------------------------------------------------------------------- the purges
Finder = Callable[[Session, datetime], list]
Purger = Callable[[Session, list], dict[str, int]]
FINDERS: dict[str, Finder] = {
    "jobs": _due_jobs,
    "grant_evidence": _due_grant_evidence,
    "webhook_bodies": _due_webhook_bodies,
    "templates": _due_templates,
    "templates_withdrawn": _due_templates_withdrawn,
    # Complaints resolved before the cutoff that still keep their evidence file.
    "complaint_evidence": complaints.due_evidence,
}


def _purgers(evidence_store: MediaStore, now: datetime) -> dict[str, Purger]:
    return {
        "jobs": _purge_jobs,
        "grant_evidence": _purge_grant_evidence,
        "webhook_bodies": _purge_webhook_bodies,
        "templates": _purge_templates,
        "templates_withdrawn": _purge_templates,
        # The files go once the purge has committed; the complaint itself stays.
        "complaint_evidence": lambda s, ids: complaints.destroy_evidence(
            s, evidence_store, ids, now
        ),
    }


def _cutoffs(settings: Settings, now: datetime) -> dict[str, datetime]:
    return {c.key: now - c.period for c in schedule(settings) if c.purged and c.period is not None}


def due(session: Session, settings: Settings, now: datetime) -> dict[str, int]:
    """How many items of each purged class are past their period (nothing is changed)."""
    return {
        key: len(FINDERS[key](session, cutoff)) for key, cutoff in _cutoffs(settings, now).items()
    }


def purge(
    session: Session,
    audit_key: KeySource,
    settings: Settings,
    now: datetime,
    evidence_store: MediaStore,
) -> dict[str, dict[str, int]]:
    """Purge every class past its period; each class that lost anything gets one
    `retention.purged` audit entry with its counts and cutoff. Returns the counts per class.
    `evidence_store` holds complaint evidence (`Services.evidence_store`)."""
    done = {}
    purgers = _purgers(evidence_store, now)
    for key, cutoff in _cutoffs(settings, now).items():
        find, destroy = FINDERS[key], purgers[key]
        ids = find(session, cutoff)
        counts = destroy(session, ids) if ids else {"count": 0}
        if ids:
            audit.append(
                session,
                audit_key,
                "retention.purged",
                ACTOR,
                {"class": key, **counts, "cutoff": cutoff.isoformat()},
            )
        done[key] = counts
    session.flush()
    return done
