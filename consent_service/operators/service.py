"""What operators do: grant the role, approve or suspend providers, resolve enrollment disputes,
check system health; and the periodic housekeeping (grant expiry, media purge, heartbeat)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func
from sqlmodel import Session, col, select

from consent_service import db
from consent_service.accounts import service as accounts
from consent_service.accounts.models import Invitation, User
from consent_service.audit import service as audit
from consent_service.audit.models import AuditEvent
from consent_service.biometrics.assurance import settle_level
from consent_service.biometrics.disputes import OPEN, open_vectors
from consent_service.biometrics.models import BiometricTemplate, Enrollment, EnrollmentDispute
from consent_service.biometrics.service import add_templates, keep_error
from consent_service.consent.models import ConsentGrant
from consent_service.consent.receipts import request_signing
from consent_service.consent.service import latest_version
from consent_service.crypto import Envelope, KeySource
from consent_service.errors import Conflict, InvalidRequest, NotFound
from consent_service.gate.models import GateJob
from consent_service.notices import service as notices
from consent_service.notices.service import notify
from consent_service.operators.models import WorkerHeartbeat
from consent_service.providers.models import Provider
from consent_service.queues import gallery_queues
from consent_service.storage import MediaStore
from consent_service.tasking import queue_depths
from consent_service.timeutil import as_utc, utcnow
from consent_service.vocabulary import (
    DisputeStatus,
    EnrollmentStatus,
    GrantStatus,
    JobStatus,
    ProviderStatus,
)

PROVIDER_STATUSES = tuple(s.value for s in ProviderStatus)


# --- operator accounts ---------------------------------------------------------------------


def add_operator(
    session: Session, audit_key: KeySource, email: str
) -> tuple[User, Invitation | None]:
    """Invite the address to be an operator (the caller mails the invitation's link). A new
    address gets an account whose password the link sets; an existing one keeps its password
    and becomes an operator only when its verified owner accepts. Returns (user, invitation),
    no invitation when the account is an operator already."""
    existing = accounts.find_user(session, email)
    if existing is not None and existing.is_operator:
        return existing, None
    invitation = accounts.invite(session, email, "operator")
    user = session.get(User, invitation.user_id)
    assert user is not None  # foreign key
    audit.append(
        session,
        audit_key,
        "operator.invited",
        "cli",
        {"user_id": user.id, "created": invitation.new_account, "invitation": invitation.id},
    )
    return user, invitation


def _operator_accepted(
    session: Session, invitation: Invitation, user: User, audit_key: KeySource
) -> None:
    """The receiver of `accounts.service.invitation_accepted` for the operator role."""
    if invitation.role != "operator" or user.is_operator:
        return
    user.is_operator = True
    session.add(user)
    session.flush()
    audit.append(
        session,
        audit_key,
        "operator.added",
        f"user:{user.id}",
        {"user_id": user.id, "created": invitation.new_account, "invitation": invitation.id},
    )


accounts.invitation_accepted.connect(_operator_accepted)


# --- providers -----------------------------------------------------------------------------


def list_providers(session: Session) -> list[Provider]:
    return list(session.exec(select(Provider).order_by(col(Provider.created_at))).all())


def set_provider_status(
    session: Session, audit_key: KeySource, actor: str, provider_id: str, status: str
) -> Provider:
    """Approve (`active`) or suspend a provider; a suspended provider's keys are refused."""
    if status not in (ProviderStatus.ACTIVE, ProviderStatus.SUSPENDED):
        raise InvalidRequest("A provider can only be approved (active) or suspended.")
    provider = session.get(Provider, provider_id)
    if provider is None:
        raise NotFound("No such provider.")
    if provider.status != status:
        before, provider.status = provider.status, status
        session.add(provider)
        session.flush()
        audit.append(
            session,
            audit_key,
            "operator.provider_approved"
            if status == ProviderStatus.ACTIVE
            else "operator.provider_suspended",
            actor,
            {"provider_id": provider.id, "from": before, "to": status},
        )
    return provider


# --- enrollment disputes -------------------------------------------------------------------


class Resolution(StrEnum):
    """What an operator decides; the dispute's status becomes the `DisputeStatus` of that name."""

    AWARD_CLAIMANT = DisputeStatus.AWARDED_CLAIMANT.value  # the new account gets the face
    KEEP_HOLDER = DisputeStatus.KEPT_HOLDER.value  # the existing account keeps it
    REJECT_BOTH = DisputeStatus.REJECTED_BOTH.value  # nobody keeps it: both lose their templates


def _told(resolution: Resolution, who: str) -> str:
    """The key of what `who` (`claimant` or `holder`) is told (notices/service.py)."""
    return f"dispute.resolved.{resolution.value}.{who}"


def list_disputes(session: Session, status: str | None = OPEN) -> list[EnrollmentDispute]:
    query = select(EnrollmentDispute).order_by(col(EnrollmentDispute.created_at))
    if status:
        query = query.where(EnrollmentDispute.status == status)
    return list(session.exec(query).all())


def _remove_templates(session: Session, subject_id: int, modality: str) -> int:
    rows = session.exec(
        select(BiometricTemplate).where(
            BiometricTemplate.subject_id == subject_id, BiometricTemplate.modality == modality
        )
    ).all()
    for row in rows:
        session.delete(row)
    return len(rows)


def resolve_dispute(
    session: Session,
    envelope: Envelope,
    audit_key: KeySource,
    actor: str,
    dispute_id: str,
    resolution: Resolution,
    note: str = "",
) -> EnrollmentDispute:
    """Apply an operator's decision in the caller's transaction: templates move (or not), the
    held vectors are destroyed, the enrollment is finished, both people are told, it is audited."""
    dispute = session.exec(
        select(EnrollmentDispute).where(EnrollmentDispute.id == dispute_id).with_for_update()
    ).first()
    if dispute is None:
        raise NotFound("No such dispute.")
    if dispute.status != OPEN:
        raise Conflict("This dispute is already resolved.")
    modality = dispute.modality
    enrollment = session.get(Enrollment, dispute.enrollment_id)
    removed = added = 0
    if resolution in (Resolution.AWARD_CLAIMANT, Resolution.REJECT_BOTH):
        removed = _remove_templates(session, dispute.holder_subject_id, modality)
    if resolution is Resolution.AWARD_CLAIMANT:
        added = add_templates(
            session,
            envelope,
            dispute.claimant_subject_id,
            modality,
            dispute.model,
            dispute.enrollment_id,
            open_vectors(envelope, dispute),
        )
    if enrollment is not None:
        if resolution is Resolution.AWARD_CLAIMANT:
            enrollment.status = EnrollmentStatus.COMPLETED.value
            enrollment.template_count, enrollment.error = added, None
        else:
            enrollment.status = EnrollmentStatus.FAILED.value
            told = _told(resolution, "claimant")
            keep_error(enrollment, notices.as_error(told, {"modality": modality}))
        session.add(enrollment)
    # The held vectors are destroyed whatever the outcome (copied into templates if awarded).
    dispute.ciphertext, dispute.wrapped_key = b"", b""
    dispute.status, dispute.resolved_by = resolution.value, actor
    dispute.note, dispute.resolved_at = note[:2000], utcnow()
    session.add(dispute)
    for who, subject_id in (
        ("claimant", dispute.claimant_subject_id),
        ("holder", dispute.holder_subject_id),
    ):
        notify(session, subject_id, "dispute.resolved", _told(resolution, who), modality=modality)
        # Templates moved: each side's level is its weakest enrollment still in the gallery.
        settle_level(
            session,
            audit_key,
            subject_id,
            actor=actor,
            reason="dispute_resolved",
            evidence={"dispute_id": dispute.id},
        )
    session.flush()
    audit.append(
        session,
        audit_key,
        "operator.dispute_resolved",
        actor,
        {
            "dispute_id": dispute.id,
            "resolution": resolution.value,
            "modality": modality,
            "claimant_subject_id": dispute.claimant_subject_id,
            "holder_subject_id": dispute.holder_subject_id,
            "templates_removed": removed,
            "templates_added": added,
        },
        subject_id=dispute.claimant_subject_id,
    )
    return dispute


# --- audit ---------------------------------------------------------------------------------


def latest_events(session: Session, limit: int = 50) -> list[AuditEvent]:
    return list(
        session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(limit)).all()
    )


# --- system health -------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    queues: dict[str, int | None]  # None: the broker cannot tell
    last_heartbeat: datetime | None
    heartbeat_worker: str | None
    jobs_by_status: dict[str, int]
    oldest_queued_age: timedelta | None
    # GALLERY_SHARDS > 1: the shards' queues and the merges' (queues.gallery_queues), waiting
    # messages as `queues`; and the workers that answered for each (None: cannot tell).
    gallery_shards: int = 1
    gallery_queues: dict[str, int | None] = field(default_factory=dict)
    gallery_consumers: dict[str, list[str]] | None = None


def health(
    session: Session,
    broker_url: str,
    queues: list[str],
    now: datetime,
    gallery_shards: int = 1,
    gallery_consumers: dict[str, list[str]] | None = None,
) -> Health:
    """The health page's numbers; with `gallery_shards` > 1 the shards' queues too
    (`queues.gallery_queues`), and `gallery_consumers` as `tasking.queue_consumers` found them."""
    beat = session.exec(
        select(WorkerHeartbeat).order_by(col(WorkerHeartbeat.beat_at).desc()).limit(1)
    ).first()
    by_status = {
        status: int(n)
        for status, n in session.exec(
            select(GateJob.status, func.count()).group_by(GateJob.status)
        ).all()
    }
    oldest = session.exec(
        select(func.min(GateJob.created_at)).where(GateJob.status == JobStatus.QUEUED.value)
    ).first()
    sharded = gallery_queues(gallery_shards)
    depths = queue_depths(broker_url, [*queues, *sharded])  # one read of the broker for both
    return Health(
        queues={q: depths[q] for q in queues},
        last_heartbeat=as_utc(beat.beat_at) if beat else None,
        heartbeat_worker=beat.worker if beat else None,
        jobs_by_status=by_status,
        oldest_queued_age=now - as_utc(oldest) if oldest else None,
        gallery_shards=gallery_shards,
        gallery_queues={q: depths[q] for q in sharded},
        gallery_consumers=gallery_consumers,
    )


def heartbeat(session: Session, worker: str, now: datetime) -> None:
    row = session.get(WorkerHeartbeat, worker[:200])
    if row is None:
        row = WorkerHeartbeat(worker=worker[:200])
    row.beat_at = now
    session.add(row)
    session.flush()


# --- periodic housekeeping -----------------------------------------------------------------


def expire_grants(session: Session, audit_key: KeySource, now: datetime) -> int:
    """Write an `expired` version of every active grant whose period has ended."""
    candidates = session.exec(
        select(ConsentGrant).where(
            ConsentGrant.status == GrantStatus.ACTIVE.value,
            col(ConsentGrant.valid_until).is_not(None),
            col(ConsentGrant.valid_until) < now,
        )
    ).all()
    expired = 0
    for row in candidates:
        current = latest_version(session, row.grant_id)
        if current is None or current.id != row.id:
            continue  # a later version (revoked, expired) already exists
        data = row.model_dump(exclude={"id", "version", "status", "created_at", "actor"})
        new = ConsentGrant(
            **data,
            version=row.version + 1,
            status=GrantStatus.EXPIRED.value,
            created_at=now,
            actor="system:expiry",
        )
        session.add(new)
        session.flush()
        request_signing(session, new)  # its receipt, signed by a worker after the commit
        audit.append(
            session,
            audit_key,
            "consent.expired",
            "system:expiry",
            {
                "grant_id": new.grant_id,
                "version": new.version,
                "valid_until": as_utc(new.valid_until).isoformat() if new.valid_until else None,
            },
            subject_id=new.subject_id,
        )
        expired += 1
    return expired


def purge_media(
    session: Session, audit_key: KeySource, store: MediaStore, keys: list[str]
) -> list[str]:
    """Audit the destruction of media kept past retention, one entry each (the SHA-256, never
    the bytes), and delete those files once the transaction has committed. Returns the keys."""
    purged = []
    for key in keys:
        try:
            digest = hashlib.sha256(store.get(key)).hexdigest()
        except KeyError:
            continue
        except Exception:  # noqa: BLE001 - unreadable (other key, damaged): still past retention
            digest = None
        audit.append(
            session, audit_key, "media.purged", "system:retention", {"key": key, "sha256": digest}
        )
        purged.append(key)
    db.after_commit(session, lambda: _delete(store, purged))
    return purged


def _delete(store: MediaStore, keys: list[str]) -> None:
    for key in keys:
        store.delete(key)
