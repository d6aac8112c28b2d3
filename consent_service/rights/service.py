"""The activity ledger, the export of all own data and account deletion, written once for the
web pages, the CLI and the API. Plain functions of a session: they flush and register the
deletion of files for after the commit; the caller's unit of work commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import or_
from sqlmodel import Session, col, select

from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.accounts.service import (
    end_all_sessions,
    guardian_evidence,
    subject_of,
    verify_password,
)
from consent_service.audit import service as audit
from consent_service.audit.models import AuditEvent
from consent_service.biometrics import disputes
from consent_service.biometrics.models import BiometricTemplate, Enrollment
from consent_service.consent import service as consent
from consent_service.consent.models import ConsentGrant
from consent_service.consent.receipts import Controller, build_receipt
from consent_service.crypto import KeySource
from consent_service.errors import InvalidRequest
from consent_service.gate.models import Decision, Finding, GateJob
from consent_service.guardians import service as guardians
from consent_service.providers.models import Provider
from consent_service.rights.receipts import provider_names, receipt_content, stored_receipt
from consent_service.rows import row_id
from consent_service.storage import MediaStore
from consent_service.timeutil import as_utc, new_id, utcnow
from consent_service.vocabulary import DecisionKind, EnrollmentStatus, GrantStatus

# Stored in place of a deleted account's password hash: no password verifies against it.
DELETED_ACCOUNT_HASH = "!deleted"


@dataclass(frozen=True)
class LedgerEntry:
    job_id: str
    time: str
    provider: str
    operation: str
    roles: list[str]  # each role the person had in the job, in the order found
    outcome: str
    decision: str | None
    reasons: list[str]
    grant_id: str | None
    grant_version: int | None
    # The person's assurance level and the provider's minimum when the decision was made.
    assurance: str | None = None
    assurance_required: str | None = None
    # The purpose code the job stated and the provider's words beside it; the purpose alone
    # kept the person's grants from covering the job when `uncovered_purpose` is set.
    purpose: str | None = None
    purpose_detail: str | None = None
    uncovered_purpose: str | None = None

    @property
    def blocked(self) -> bool:
        return self.decision != DecisionKind.ALLOW


def ledger(
    session: Session,
    subject_id: int,
    limit: int | None = None,
    offset: int = 0,
    job_id: str | None = None,
) -> list[LedgerEntry]:
    """Every job in which this person was found, newest first, once per job (with each role
    they had in it): who, what, when, the person's outcome and the job's decision. `limit` and
    `offset` count jobs; `job_id` keeps that one job (a notice's link), if it showed them.
    Never media, file names or face positions."""
    jobs = (
        select(GateJob.id)
        .join(Finding, col(Finding.job_id) == GateJob.id)
        .where(Finding.subject_id == subject_id)
        .group_by(col(GateJob.id), col(GateJob.created_at))
        .order_by(col(GateJob.created_at).desc(), col(GateJob.id))
    )
    if job_id is not None:
        jobs = jobs.where(GateJob.id == job_id)
    if limit is not None:
        jobs = jobs.limit(limit).offset(offset)
    job_ids = list(session.exec(jobs))
    if not job_ids:
        return []
    query = (
        select(Finding, GateJob, Provider, Decision)
        .join(GateJob, col(GateJob.id) == Finding.job_id)
        .join(Provider, col(Provider.id) == GateJob.provider_id)
        .outerjoin(Decision, col(Decision.job_id) == GateJob.id)
        .where(Finding.subject_id == subject_id, col(Finding.job_id).in_(job_ids))
        # A job decided again (a consent request answered) shows its latest revision only.
        .where(or_(col(Decision.job_id).is_(None), col(Finding.revision) == Decision.revision))
        .order_by(col(GateJob.created_at).desc(), col(GateJob.id), col(Finding.id))
    )
    entries: dict[str, LedgerEntry] = {}
    for finding, job, provider, decision in session.exec(query):
        seen = entries.get(job.id)
        if seen is not None:  # the same person again in the job (another item or role)
            if finding.role not in seen.roles:
                seen.roles.append(finding.role)
            continue
        entries[job.id] = LedgerEntry(
            job_id=job.id,
            time=as_utc(decision.created_at if decision else job.created_at).isoformat(),
            provider=provider.name,
            operation=job.operation,
            roles=[finding.role],
            outcome=finding.outcome,
            decision=decision.decision if decision else None,
            reasons=list(decision.reasons) if decision else [],
            grant_id=finding.grant_id,
            grant_version=finding.grant_version,
            assurance=finding.assurance,
            assurance_required=decision.assurance_required if decision else None,
            purpose=job.purpose,
            purpose_detail=job.purpose_detail,
            uncovered_purpose=finding.uncovered_purpose,
        )
    return list(entries.values())


@dataclass(frozen=True)
class ReceiptShown:
    """The receipt of one grant version as the person sees it: once signed, exactly the signed
    content with its JWS; before that (the worker has not signed it yet) the content it will
    have, `jws` None."""

    row: ConsentGrant
    content: dict
    jws: str | None = None
    kid: str | None = None
    signed_at: str | None = None

    @property
    def signed(self) -> bool:
        return self.jws is not None


def receipt_shown(
    session: Session,
    subject: Subject,
    row: ConsentGrant,
    controller: Controller,
    base_url: str,
    names: dict[str, str] | None = None,
) -> ReceiptShown:
    kept = stored_receipt(session, row)
    if kept is not None:
        return ReceiptShown(
            row, receipt_content(kept.jws), kept.jws, kept.kid, as_utc(kept.signed_at).isoformat()
        )
    names = provider_names(session) if names is None else names
    return ReceiptShown(row, build_receipt(row, subject, names, controller, base_url))


def receipts(
    session: Session, subject: Subject, controller: Controller, base_url: str
) -> list[dict]:
    """Every receipt of a subject, oldest first: its content and, once signed, its JWS."""
    names = provider_names(session)
    shown = [
        receipt_shown(session, subject, row, controller, base_url, names)
        for row in consent.grant_versions(session, row_id(subject))
    ]
    return [{"receipt": r.content, "jws": r.jws} for r in shown]


def export(
    session: Session,
    user: User,
    controller: Controller,
    base_url: str,
    subject: Subject | None = None,
) -> dict:
    """All of a person's own data as JSON-ready values. Template bytes and embeddings are never
    part of it: the export lists which templates exist, not what they contain. `subject` is a
    child the account manages as guardian (default: the account's own subject)."""
    subject = subject or subject_of(session, user)
    grants = consent.grant_versions(session, row_id(subject))
    templates = session.exec(
        select(BiometricTemplate).where(BiometricTemplate.subject_id == subject.id)
    ).all()
    enrollments = session.exec(
        select(Enrollment)
        .where(Enrollment.subject_id == subject.id)
        .order_by(col(Enrollment.created_at))
    ).all()
    events = session.exec(
        select(AuditEvent).where(AuditEvent.subject_id == subject.id).order_by(col(AuditEvent.seq))
    ).all()
    return {
        "exported_at": utcnow().isoformat(),
        "controller": {"name": controller.name, "contact": controller.contact},
        "account": {
            "email": user.email,
            "created_at": as_utc(user.created_at).isoformat(),
        },
        "subject": {
            "reference": subject.public_id,
            "display_name": subject.display_name,
            "protect_only": subject.protect_only,
            # uploaded < live < reviewed: how the enrolled face and voice were shown to be yours.
            "assurance": subject.assurance,
            "created_at": as_utc(subject.created_at).isoformat(),
            # Managed by this account's holder as the guardian of a child under 14.
            "guardian": guardian_evidence(session, subject),
        },
        "grants": [_grant_version(g) for g in grants],
        "receipts": receipts(session, subject, controller, base_url),
        "ledger": [_entry(e) for e in ledger(session, row_id(subject))],
        "enrollments": [
            {
                "id": e.id,
                "modality": e.modality,
                "status": e.status,
                "error": e.error,
                "templates_made": e.template_count,
                "assurance": e.assurance,
                "started_at": as_utc(e.created_at).isoformat(),
                "finished_at": as_utc(e.finished_at).isoformat() if e.finished_at else None,
            }
            for e in enrollments
        ],
        "templates": [
            {
                "id": t.id,
                "modality": t.modality,
                "model": t.model,
                "enrollment_id": t.enrollment_id,
                "created_at": as_utc(t.created_at).isoformat(),
            }
            for t in templates
        ],
        "audit_events": [
            {
                "seq": ev.seq,
                "event_type": ev.event_type,
                "actor": ev.actor,
                "created_at": as_utc(ev.created_at).isoformat(),
                "payload": ev.payload,
            }
            for ev in events
        ],
    }


def _grant_version(g) -> dict:
    return {
        "grant_id": g.grant_id,
        "version": g.version,
        "status": g.status,
        "modality": g.modality,
        "operations": list(g.operations),
        "roles": list(g.roles),
        "all_providers": g.all_providers,
        "provider_ids": list(g.provider_ids),
        "purpose": g.purpose,
        "valid_from": as_utc(g.valid_from).isoformat(),
        "valid_until": as_utc(g.valid_until).isoformat() if g.valid_until else None,
        "created_at": as_utc(g.created_at).isoformat(),
        "notice_version": g.notice_version,
        "language": g.language,
        "ip": g.ip,
        "user_agent": g.user_agent,
        "identity_method": g.identity_method,
        "actor": g.actor,
    }


def _entry(e: LedgerEntry) -> dict:
    return {
        "job_id": e.job_id,
        "time": e.time,
        "provider": e.provider,
        "operation": e.operation,
        "roles": e.roles,
        "outcome": e.outcome,
        "decision": e.decision,
        "reasons": e.reasons,
        "grant_id": e.grant_id,
        "grant_version": e.grant_version,
        "assurance": e.assurance,
        "assurance_required": e.assurance_required,
    }


@dataclass
class Deletion:
    subject_id: int
    templates_destroyed: int = 0
    grants_revoked: list[str] = field(default_factory=list)
    enrollments_cancelled: int = 0
    modalities: list[str] = field(default_factory=list)


def check_password(user: User, password: str) -> None:
    if not verify_password(user.password_hash, password):
        raise InvalidRequest("The password is not correct; the account was not deleted.")


def delete_account(
    session: Session,
    store: MediaStore,
    audit_key: KeySource,
    user: User,
    password: str,
    evidence: consent.Evidence,
) -> Deletion:
    """Erase an account: its templates at once (and the gallery moves on, so workers stop
    matching them), pending enrollments and their media, its active grants revoked as new
    versions, its login made impossible. What stays is pseudonymous: the consent record, the
    gate's findings and an audit tombstone without biometrics or contact details."""
    check_password(user, password)
    # A guardian's children go with the account: nobody would be left to manage them.
    for child in guardians.children_of(session, user):
        erase_subject(session, store, audit_key, child, evidence, "guardian.child_removed")
    subject = subject_of(session, user)
    done = erase_subject(session, store, audit_key, subject, evidence, event=None)
    user.email = f"deleted-{new_id()}@deleted.invalid"  # frees the address for a new account
    user.password_hash = DELETED_ACCOUNT_HASH
    user.is_active = False
    end_all_sessions(user)
    session.add(user)
    session.flush()
    _tombstone(session, audit_key, "account.deleted", evidence, done)
    return done


def delete_child(
    session: Session,
    store: MediaStore,
    audit_key: KeySource,
    guardian: User,
    password: str,
    child: Subject,
    evidence: consent.Evidence,
) -> Deletion:
    """A guardian erases a child they manage (the caller has checked that they do)."""
    if not verify_password(guardian.password_hash, password):
        raise InvalidRequest("The password is not correct; the child's data was not deleted.")
    return erase_subject(session, store, audit_key, child, evidence, "guardian.child_removed")


def erase_subject(
    session: Session,
    store: MediaStore,
    audit_key: KeySource,
    subject: Subject,
    evidence: consent.Evidence,
    event: str | None,
) -> Deletion:
    """Destroy one subject's templates and pending enrollments, revoke its active grants and
    blank its name; `event` names the audit tombstone (None: the caller writes its own). A
    managed child's guardianship ends with it."""
    subject_id = row_id(subject)
    done = Deletion(subject_id=subject_id)

    templates = session.exec(
        select(BiometricTemplate).where(BiometricTemplate.subject_id == subject_id)
    ).all()
    modalities = {t.modality for t in templates}
    done.modalities = sorted(modalities)
    for t in templates:
        session.delete(t)  # logged for the workers' galleries (biometrics.models.TemplateChange)
    done.templates_destroyed = len(templates)
    session.flush()

    pending = session.exec(
        select(Enrollment)
        .where(
            Enrollment.subject_id == subject_id,
            Enrollment.status == EnrollmentStatus.PENDING.value,
        )
        .with_for_update()
    ).all()
    for enrollment in pending:
        # The files go once the erasure has committed, never before (a rollback keeps the rows
        # that point at them).
        keys = list(enrollment.media_keys)
        db.after_commit(session, partial(_delete, store, keys))
        enrollment.media_keys = []
        enrollment.status = EnrollmentStatus.FAILED.value
        enrollment.error = "The account was deleted."
        enrollment.finished_at = utcnow()
        session.add(enrollment)
    done.enrollments_cancelled = len(pending)
    # Enrollments held on an open dispute: the vectors kept for the operator go too.
    done.enrollments_cancelled += disputes.withdraw_claims(session, subject_id)

    for grant in consent.current_grants(session, [subject_id]):
        if grant.status == GrantStatus.ACTIVE.value:
            consent.revoke(session, audit_key, subject_id, grant.grant_id, evidence)
            done.grants_revoked.append(grant.grant_id)

    subject.display_name = ""
    subject.protect_only = False
    session.add(subject)
    guardians.end_guardianship(session, subject_id)
    session.flush()
    if event is not None:
        _tombstone(session, audit_key, event, evidence, done)
    return done


def _delete(store: MediaStore, keys: list[str]) -> None:
    for key in keys:
        store.delete(key)


def _tombstone(
    session: Session, audit_key: KeySource, event: str, evidence: consent.Evidence, done: Deletion
) -> None:
    modalities = list(done.modalities)
    audit.append(
        session,
        audit_key,
        event,
        evidence.actor,
        {
            "templates_destroyed": done.templates_destroyed,
            "modalities": modalities,
            "grants_revoked": done.grants_revoked,
            "enrollments_cancelled": done.enrollments_cancelled,
        },
        subject_id=done.subject_id,
    )
