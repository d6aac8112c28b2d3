"""Granting and revoking consent, written once for the web form, the API and the CLI."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from blinker import Namespace
from sqlalchemy import func
from sqlmodel import Session, col, select

from consent_service.accounts.models import Subject
from consent_service.accounts.service import lock_subjects, require_verified_subject
from consent_service.audit import service as audit
from consent_service.consent.models import ConsentGrant
from consent_service.consent.notice import NOTICE_VERSION
from consent_service.consent.purposes import require_active
from consent_service.consent.receipts import request_signing
from consent_service.crypto import KeySource
from consent_service.errors import InvalidRequest, Msgid, NotFound
from consent_service.providers.models import Provider
from consent_service.timeutil import as_utc, utcnow
from consent_service.vocabulary import GrantStatus, Modality, Operation, Role

_signals = Namespace()
# Sent in the transaction that writes a revoked version, with `grant_id` and `version`; the
# session is the sender. The gate listens (gate/revocations.py): consent knows nothing of jobs.
grant_revoked = _signals.signal("grant-revoked")


@dataclass(frozen=True)
class GrantRequest:
    operations: list[Operation]
    roles: list[Role]
    all_providers: bool
    provider_ids: list[str]
    purpose: str = ""
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    # The modality the person chose on the form; the edit types must all be of it.
    modality: Modality | None = None
    # Purpose codes of the operator's vocabulary (`consent.purposes`); empty: every purpose.
    purposes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RefusalRequest:
    """A "no" to named providers for edits of one modality: `operations` empty refuses every
    edit type of it. It covers both roles and every purpose."""

    modality: Modality
    provider_ids: list[str]
    operations: list[Operation] = field(default_factory=list)


@dataclass(frozen=True)
class Evidence:
    actor: str
    identity_method: str
    language: str = "en"
    ip: str | None = None
    user_agent: str | None = None
    notice_version: str = NOTICE_VERSION
    # A guardian acting for a managed child: {"reference", "relationship", "declared_at"}.
    guardian: dict | None = None
    # The live step-up check behind it: {"live_session_id", "method", "scores", ...}.
    identity_evidence: dict | None = None


def validate(req: GrantRequest, now: datetime | None = None) -> None:
    now = now or utcnow()
    if not req.operations:
        raise InvalidRequest("Choose at least one edit type.")
    modalities = {op.modality for op in req.operations}
    if len(modalities) != 1:
        raise InvalidRequest("One grant covers face edits or voice edits, not both.")
    if req.modality is not None and modalities != {req.modality}:
        raise InvalidRequest(
            "Choose only %(modality)s edit types for a %(modality)s grant.",
            modality=Msgid(req.modality.value),
        )
    if not req.roles:
        raise InvalidRequest("Choose at least one role (source, target).")
    if not req.all_providers and not req.provider_ids:
        raise InvalidRequest("Choose the providers this grant is for, or all providers.")
    start = req.valid_from or now
    if req.valid_until is not None and as_utc(req.valid_until) <= as_utc(start):
        raise InvalidRequest("The end date must be after the start date.")


def check(session: Session, req: GrantRequest) -> None:
    """`validate`, and the purposes in force in the operator's vocabulary."""
    validate(req)
    require_active(session, req.purposes)


def grant(
    session: Session, audit_key: KeySource, subject_id: int, req: GrantRequest, evidence: Evidence
) -> ConsentGrant:
    check(session, req)
    require_verified_subject(session, subject_id)  # a grant needs a proven address
    row = ConsentGrant(
        subject_id=subject_id,
        modality=req.operations[0].modality.value,
        operations=sorted({op.value for op in req.operations}),
        roles=sorted({r.value for r in req.roles}),
        all_providers=req.all_providers,
        provider_ids=[] if req.all_providers else sorted(set(req.provider_ids)),
        purpose=req.purpose.strip()[:1000],
        purposes=sorted(set(req.purposes)),
        valid_from=req.valid_from or utcnow(),
        valid_until=req.valid_until,
        status=GrantStatus.ACTIVE.value,
        **_evidence_fields(evidence),
    )
    session.add(row)
    session.flush()
    request_signing(session, row)
    audit.append(
        session,
        audit_key,
        "consent.granted",
        evidence.actor,
        _audit_payload(row),
        subject_id=subject_id,
    )
    return row


def refuse(
    session: Session,
    audit_key: KeySource,
    subject_id: int,
    req: RefusalRequest,
    evidence: Evidence,
) -> ConsentGrant:
    """Record an explicit refusal: a grant version with status `refused` naming the providers,
    which beats every consent of the person over the same scope (`consent.policy`). No live
    check, unlike a grant: a refusal only denies, so whoever can act for the subject may make
    it (as with revoking). Takes the subject's lock, as a decision does before reading grants,
    so a decision is recorded wholly before or wholly after it."""
    if not req.provider_ids:
        raise InvalidRequest("Choose the provider you refuse.")
    if any(op.modality is not req.modality for op in req.operations):
        raise InvalidRequest(
            "Choose only %(modality)s edit types for a %(modality)s refusal.",
            modality=Msgid(req.modality.value),
        )
    known = set(session.exec(select(Provider.id).where(col(Provider.id).in_(req.provider_ids))))
    if known != set(req.provider_ids):
        raise InvalidRequest("No such provider.")
    lock_subjects(session, [subject_id])
    operations = req.operations or [op for op in Operation if op.modality is req.modality]
    row = ConsentGrant(
        subject_id=subject_id,
        modality=req.modality.value,
        operations=sorted({op.value for op in operations}),
        roles=sorted(r.value for r in Role),
        all_providers=False,
        provider_ids=sorted(set(req.provider_ids)),
        purposes=[],
        valid_from=utcnow(),
        status=GrantStatus.REFUSED.value,
        refusal=True,
        **_evidence_fields(evidence),
    )
    session.add(row)
    session.flush()
    request_signing(session, row)
    audit.append(
        session,
        audit_key,
        "consent.refused",
        evidence.actor,
        _audit_payload(row),
        subject_id=subject_id,
    )
    return row


def revoke(
    session: Session, audit_key: KeySource, subject_id: int, grant_id: str, evidence: Evidence
) -> ConsentGrant:
    """Write the revoked version of a grant; effective for every decision recorded after commit.
    The subject's row is locked first, the lock a decision takes before reading grants: a
    decision recorded concurrently is committed before the revocation reads which allowed jobs
    relied on the grant (`grant_revoked`), or reads the revoked version.

    Revoking a refusal withdraws it: it stops denying, and (being no consent) neither makes
    later jobs `revoked` nor concerns any allowed job."""
    lock_subjects(session, [subject_id])
    current = latest_version(session, grant_id)
    if current is None or current.subject_id != subject_id:
        raise NotFound("No such grant.")
    if current.status == GrantStatus.REVOKED.value:
        return current
    data = current.model_dump(
        exclude={
            "id",
            "version",
            "status",
            "created_at",
            "notice_version",
            "language",
            "ip",
            "user_agent",
            "identity_method",
            "identity_evidence",
            "actor",
            "guardian",
        }
    )
    row = ConsentGrant(
        **data,
        version=current.version + 1,
        status=GrantStatus.REVOKED.value,
        created_at=utcnow(),
        **_evidence_fields(evidence),
    )
    session.add(row)
    session.flush()
    request_signing(session, row)
    audit.append(
        session,
        audit_key,
        "consent.refusal_withdrawn" if row.refusal else "consent.revoked",
        evidence.actor,
        _audit_payload(row),
        subject_id=subject_id,
    )
    if not row.refusal:  # no job was ever allowed on a refusal
        # Providers whose allowed jobs relied on this grant hear of it (outbox, after commit).
        grant_revoked.send(session, grant_id=row.grant_id, version=row.version)
    return row


def set_protect_only(
    session: Session, audit_key: KeySource, subject: Subject, on: bool, actor: str
) -> Subject:
    """Protect-only mode: while on, every job that finds this person is denied (`protected`),
    whatever their grants say. Audited; a no-op when nothing changes. Takes the subject's lock
    (as a decision does before reading grants), so a decision is recorded wholly before or
    wholly after the switch."""
    subject = lock_subjects(session, [subject.id])[subject.id] if subject.id else subject
    if subject.protect_only == on:
        return subject
    subject.protect_only = on
    session.add(subject)
    session.flush()
    audit.append(
        session,
        audit_key,
        "subject.protect_only_on" if on else "subject.protect_only_off",
        actor,
        {"protect_only": on},
        subject_id=subject.id,
    )
    return subject


def set_destroy_on_withdrawal(
    session: Session, audit_key: KeySource, subject: Subject, on: bool, actor: str
) -> Subject:
    """The person's choice: destroy their templates when their last grant is withdrawn (the
    retention purge does it). Audited; a no-op when nothing changes."""
    if subject.destroy_templates_on_withdrawal == on:
        return subject
    subject.destroy_templates_on_withdrawal = on
    session.add(subject)
    session.flush()
    audit.append(
        session,
        audit_key,
        "subject.destroy_on_withdrawal_on" if on else "subject.destroy_on_withdrawal_off",
        actor,
        {"destroy_templates_on_withdrawal": on},
        subject_id=subject.id,
    )
    return subject


def grant_versions(session: Session, subject_id: int) -> list[ConsentGrant]:
    """Every version of every grant of a subject, oldest first: the consent record."""
    return list(
        session.exec(
            select(ConsentGrant)
            .where(ConsentGrant.subject_id == subject_id)
            .order_by(col(ConsentGrant.created_at), col(ConsentGrant.version))
        )
    )


def grant_version(session: Session, subject_id: int, grant_id: str, version: int) -> ConsentGrant:
    row = session.exec(
        select(ConsentGrant).where(
            ConsentGrant.grant_id == grant_id,
            ConsentGrant.version == version,
            ConsentGrant.subject_id == subject_id,
        )
    ).first()
    if row is None:
        raise NotFound("No such grant version.")
    return row


def latest_version(session: Session, grant_id: str) -> ConsentGrant | None:
    return session.exec(
        select(ConsentGrant)
        .where(ConsentGrant.grant_id == grant_id)
        .order_by(col(ConsentGrant.version).desc())
    ).first()


def current_grants(session: Session, subject_ids: Iterable[int]) -> list[ConsentGrant]:
    """The latest version of every grant of these subjects."""
    ids = list(set(subject_ids))
    if not ids:
        return []
    newest = (
        select(ConsentGrant.grant_id, func.max(ConsentGrant.version).label("v"))
        .where(col(ConsentGrant.subject_id).in_(ids))
        .group_by(ConsentGrant.grant_id)
        .subquery()
    )
    return list(
        session.exec(
            select(ConsentGrant)
            .join(
                newest,
                (col(ConsentGrant.grant_id) == newest.c.grant_id)
                & (col(ConsentGrant.version) == newest.c.v),
            )
            .order_by(col(ConsentGrant.created_at).desc())
        )
    )


def find_active(session: Session, subject_id: int, operation: Operation) -> list[ConsentGrant]:
    return [
        g
        for g in current_grants(session, [subject_id])
        if g.status == GrantStatus.ACTIVE.value
        and not g.refusal
        and operation.value in g.operations
    ]


def _evidence_fields(e: Evidence) -> dict:
    return {
        "notice_version": e.notice_version,
        "language": e.language,
        "ip": e.ip,
        "user_agent": (e.user_agent or "")[:400] or None,
        "identity_method": e.identity_method,
        "identity_evidence": e.identity_evidence,
        "actor": e.actor,
        "guardian": e.guardian,
    }


def _audit_payload(row: ConsentGrant) -> dict:
    payload = {
        "grant_id": row.grant_id,
        "version": row.version,
        "status": row.status,
        "operations": row.operations,
        "roles": row.roles,
        "all_providers": row.all_providers,
        "provider_ids": row.provider_ids,
        "purposes": row.purposes,
        "refusal": row.refusal,
        "valid_until": as_utc(row.valid_until).isoformat() if row.valid_until else None,
        "notice_version": row.notice_version,
        "language": row.language,
    }
    if row.identity_evidence:  # the live step-up check that proved the granter
        payload["identity_method"] = row.identity_method
        payload["live_session_id"] = row.identity_evidence.get("live_session_id")
    return payload
