"""Complaints, the domain: filing one (what it names checked, the evidence sealed, the provider
told), the operator's transitions (acknowledge, ask the provider, resolve), the provider's
answer, the two clocks, the mails to the complainant, and the destruction of evidence past its
retention period. Every transition is audited; nothing here commits, sends or deletes a file
itself (the unit of work does, after the commit)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask_babel import gettext as _
from sqlmodel import Session, col, select

from consent_service import db
from consent_service.accounts.service import normalize_email
from consent_service.audit import service as audit
from consent_service.complaints.models import Complaint
from consent_service.complaints.schemas import ComplaintForProvider
from consent_service.crypto import KeySource
from consent_service.errors import Conflict, InvalidRequest, NotFound, TokenInvalid
from consent_service.gate.models import GateJob
from consent_service.gate.status import find_revision
from consent_service.i18n.labels import COMPLAINT_KINDS, COMPLAINT_OUTCOMES
from consent_service.mail import compose
from consent_service.media.sniff import media_type
from consent_service.providers.models import Provider, ProviderRef
from consent_service.storage import MediaStore
from consent_service.timeutil import as_utc, utcnow
from consent_service.tokens.service import verify_token
from consent_service.vocabulary import (
    ComplaintKind,
    ComplaintOutcome,
    ComplaintStatus,
    WebhookEvent,
)
from consent_service.webhooks import service as webhooks

LANGUAGES = ("en", "zh-CN")
MAX_DESCRIPTION = 5000
MIN_DESCRIPTION = 10
MAX_LOCATION = 2000
MAX_MESSAGE = 5000
# References people read out and type: no 0/O, 1/I/L.
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_HEX32 = re.compile(r"[0-9a-f]{32}")
OPEN = (
    ComplaintStatus.RECEIVED.value,
    ComplaintStatus.ACKNOWLEDGED.value,
    ComplaintStatus.AWAITING_PROVIDER.value,
)

# What evidence may be: sniffed from the bytes (media.sniff), never the browser's word.
EVIDENCE_TYPES = "JPEG, PNG, GIF, WebP, MP4, MOV, WebM, MP3, WAV, Ogg, M4A, PDF"
EVIDENCE_MEDIA_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "video/mp4",
        "video/quicktime",
        "video/webm",
        "audio/mpeg",
        "audio/wav",
        "audio/ogg",
        "audio/mp4",
        "application/pdf",
    }
)


# ---------------------------------------------------------------------------- the clocks
@dataclass(frozen=True)
class Limits:
    """The published time limits: acknowledge within `ack_hours`, resolve within
    `resolve_days` of filing."""

    ack_hours: int
    resolve_days: int


class Clock(StrEnum):
    MET = "met"  # done in time
    LATE = "late"  # done, after the limit
    DUE = "due"  # not done, the limit ahead
    OVERDUE = "overdue"  # not done, the limit passed


def _clock(done: datetime | None, due: datetime, now: datetime) -> Clock:
    if done is not None:
        return Clock.MET if as_utc(done) <= as_utc(due) else Clock.LATE
    return Clock.DUE if as_utc(now) <= as_utc(due) else Clock.OVERDUE


def ack_clock(c: Complaint, now: datetime) -> Clock:
    return _clock(c.acknowledged_at, c.ack_due_at, now)


def resolve_clock(c: Complaint, now: datetime) -> Clock:
    return _clock(c.resolved_at, c.resolve_due_at, now)


# ---------------------------------------------------------------------------- filing
@dataclass(frozen=True)
class Evidence:
    data: bytes
    filename: str


@dataclass(frozen=True)
class ComplaintSpec:
    kind: str
    description: str
    email: str
    language: str
    location: str = ""
    name: str = ""
    named: str = ""  # a decision token, a token id or its SHA-256 (a label), or a job id
    user_id: int | None = None


@dataclass(frozen=True)
class Named:
    """What a complaint names, checked: the job, the decision token's id, the provider."""

    job_id: str | None
    token_jti: str | None
    provider_id: str


def resolve_named(
    session: Session, reference: str, public_keys: Mapping[str, Ed25519PublicKey]
) -> Named | None:
    """The job and provider a complaint names: a decision token (verified with the public keys,
    expired or not: it still proves who made which job), a token's id or SHA-256 (the
    `ReservedCode1` of a label, `sha256:` allowed), or a job id. None for nothing given;
    InvalidRequest when it names nothing this service decided."""
    ref = (reference or "").strip()
    if not ref:
        return None
    if ref.count(".") == 2:
        try:
            claims, _kid = verify_token(ref, public_keys, allow_expired=True)
        except TokenInvalid as exc:
            raise InvalidRequest("This decision token does not verify: %(why)s", why=exc) from None
        provider = session.get(Provider, str(claims["aud"]))
        if provider is None:
            raise InvalidRequest("This decision token names a provider this service does not know.")
        return Named(str(claims["sub"]), str(claims["jti"]), provider.id)
    ref = ref.lower().removeprefix("sha256:")
    if _HEX32.fullmatch(ref):
        job = session.get(GateJob, ref)
        if job is not None:
            return Named(job.id, None, job.provider_id)
    try:
        revision = find_revision(session, ref)
    except NotFound:
        raise InvalidRequest(
            "No decision or job of this service matches this reference: check it, or leave "
            "the field empty and describe where you saw the content."
        ) from None
    job = session.get(GateJob, revision.job_id)
    if job is None:
        raise InvalidRequest("The job of this decision is no longer kept: paste the whole token.")
    return Named(job.id, revision.jti, job.provider_id)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_reference(session: Session) -> str:
    while True:
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(8))
        reference = f"C-{raw[:4]}-{raw[4:]}"
        if session.exec(select(Complaint.id).where(Complaint.reference == reference)).first():
            continue  # pragma: no cover - 31^8 references
        return reference


def _check_text(spec: ComplaintSpec) -> tuple[ComplaintKind, str, str, str, str]:
    try:
        kind = ComplaintKind(spec.kind)
    except ValueError:
        raise InvalidRequest("Choose what the complaint is about.") from None
    description = (spec.description or "").strip()
    if not MIN_DESCRIPTION <= len(description) <= MAX_DESCRIPTION:
        raise InvalidRequest(
            "Describe what happened in %(min)d to %(max)d characters.",
            min=MIN_DESCRIPTION,
            max=MAX_DESCRIPTION,
        )
    location = (spec.location or "").strip()
    if len(location) > MAX_LOCATION:
        raise InvalidRequest("Say where in at most %(max)d characters.", max=MAX_LOCATION)
    if spec.language not in LANGUAGES:
        raise InvalidRequest("Choose the language of our answers: English or Chinese.")
    name = (spec.name or "").strip()
    if len(name) > 200:
        raise InvalidRequest("Give a name of at most %(max)d characters.", max=200)
    return kind, description, location, name, normalize_email(spec.email)


def _seal_evidence(store: MediaStore, evidence: Evidence | None, max_bytes: int) -> dict[str, Any]:
    if evidence is None or not evidence.data:
        return {}
    if len(evidence.data) > max_bytes:
        raise InvalidRequest(
            "The evidence file is too large (%(size)s MB); the limit is %(limit)s MB.",
            size=f"{len(evidence.data) / 1e6:.1f}",
            limit=f"{max_bytes / 1e6:.1f}",
        )
    evidence_type = media_type(evidence.data)
    if evidence_type not in EVIDENCE_MEDIA_TYPES:
        raise InvalidRequest(
            "The evidence file is not a kind we take: attach one of %(types)s.",
            types=EVIDENCE_TYPES,
        )
    return {
        "evidence_key": store.put(evidence.data),
        "evidence_name": (evidence.filename or "evidence").rsplit("/", 1)[-1][-200:],
        "evidence_type": evidence_type,
        "evidence_bytes": len(evidence.data),
        "evidence_sha256": hashlib.sha256(evidence.data).hexdigest(),
    }


def _answer_path(complaint: Complaint) -> str:
    return f"/api/v1/complaints/{complaint.id}/answer"


def _tell_provider(session: Session, complaint: Complaint) -> None:
    """`complaint.opened` to the provider concerned: what it is about, where, what it names
    (never the complainant's address or name), where to answer, and by when."""
    if complaint.provider_id is None:
        return
    webhooks.enqueue(
        session,
        complaint.provider_id,
        WebhookEvent.COMPLAINT_OPENED,
        {
            "complaint_id": complaint.id,
            "reference": complaint.reference,
            "kind": complaint.kind,
            "description": complaint.description,
            "location": complaint.location,
            "job_id": complaint.job_id,
            "token_jti": complaint.token_jti,
            "question": complaint.provider_question,
            "answer_url": _answer_path(complaint),
            "resolve_by": as_utc(complaint.resolve_due_at).isoformat(),
        },
        job_id=None,
    )


def file_complaint(
    session: Session,
    audit_key: KeySource,
    store: MediaStore,
    public_keys: Mapping[str, Ed25519PublicKey],
    limits: Limits,
    spec: ComplaintSpec,
    evidence: Evidence | None = None,
    *,
    evidence_max_bytes: int,
    now: datetime | None = None,
) -> tuple[Complaint, str]:
    """Record a complaint. Returns (complaint, status-link secret): the secret only now, for
    the acknowledgement mail (`received_mail`). When it names a job or decision, the provider
    concerned is told (`complaint.opened`) and asked to answer. Input is checked first; the
    evidence is sealed last (a refused complaint leaves nothing in the store)."""
    now = now or utcnow()
    kind, description, location, name, email = _check_text(spec)
    named = resolve_named(session, spec.named, public_keys)
    sealed = _seal_evidence(store, evidence, evidence_max_bytes)
    secret = secrets.token_urlsafe(24)
    complaint = Complaint(
        reference=_new_reference(session),
        kind=kind.value,
        description=description,
        location=location,
        name=name,
        email=email,
        language=spec.language,
        link_hash=_hash(secret),
        job_id=named.job_id if named else None,
        token_jti=named.token_jti if named else None,
        provider_id=named.provider_id if named else None,
        created_at=now,
        ack_due_at=now + timedelta(hours=limits.ack_hours),
        resolve_due_at=now + timedelta(days=limits.resolve_days),
        provider_asked_at=now if named else None,
        **sealed,
    )
    session.add(complaint)
    session.flush()
    _tell_provider(session, complaint)
    audit.append(
        session,
        audit_key,
        "complaint.opened",
        f"user:{spec.user_id}" if spec.user_id else "public",
        {
            "complaint_id": complaint.id,
            "reference": complaint.reference,
            "kind": complaint.kind,
            "job_id": complaint.job_id,
            "token_jti": complaint.token_jti,
            "provider_id": complaint.provider_id,
            "evidence_sha256": complaint.evidence_sha256 or None,
        },
    )
    return complaint, secret


# ---------------------------------------------------------------------------- reading
def get(session: Session, complaint_id: str) -> Complaint:
    complaint = session.get(Complaint, complaint_id) if len(complaint_id or "") <= 32 else None
    if complaint is None:
        raise NotFound("No such complaint.")
    return complaint


def by_link(session: Session, reference: str, secret: str | None) -> Complaint:
    """The complaint the status link names; a wrong secret is as unknown as a wrong reference."""
    complaint = session.exec(
        select(Complaint).where(Complaint.reference == (reference or "").upper()[:16])
    ).first()
    if (
        complaint is None
        or not secret
        or not hmac.compare_digest(_hash(secret), complaint.link_hash)
    ):
        raise NotFound("No such complaint.")
    return complaint


def queue(session: Session, include_resolved: bool = False) -> list[Complaint]:
    """The operators' queue: open complaints, the one due first on top; then (when asked) the
    resolved ones, newest first."""
    rows = list(
        session.exec(
            select(Complaint)
            .where(col(Complaint.status).in_(OPEN))
            .order_by(col(Complaint.resolve_due_at), col(Complaint.created_at))
        )
    )
    if include_resolved:
        rows += list(
            session.exec(
                select(Complaint)
                .where(Complaint.status == ComplaintStatus.RESOLVED.value)
                .order_by(col(Complaint.resolved_at).desc())
                .limit(100)
            )
        )
    return rows


def view_evidence(
    session: Session, audit_key: KeySource, store: MediaStore, complaint: Complaint, actor: str
) -> bytes:
    """The evidence file for an operator; every view audited."""
    if not complaint.evidence_key:
        raise NotFound("This complaint's evidence is not kept.")
    try:
        data = store.get(complaint.evidence_key)
    except KeyError:
        raise NotFound("This complaint's evidence is not kept.") from None
    audit.append(
        session,
        audit_key,
        "complaint.evidence_viewed",
        actor,
        {"complaint_id": complaint.id, "evidence_sha256": complaint.evidence_sha256},
    )
    return data


def provider_view(complaint: Complaint) -> ComplaintForProvider:
    """What the provider concerned reads: never the complainant's address, name or evidence."""
    return ComplaintForProvider(
        id=complaint.id,
        reference=complaint.reference,
        kind=ComplaintKind(complaint.kind),
        status=ComplaintStatus(complaint.status),
        description=complaint.description,
        location=complaint.location,
        job_id=complaint.job_id,
        token_jti=complaint.token_jti,
        question=complaint.provider_question,
        asked_at=as_utc(complaint.provider_asked_at) if complaint.provider_asked_at else None,
        answer=complaint.provider_answer,
        content_removed=complaint.provider_content_removed,
        answered_at=(
            as_utc(complaint.provider_answered_at) if complaint.provider_answered_at else None
        ),
        outcome=ComplaintOutcome(complaint.outcome) if complaint.outcome else None,
        resolve_by=as_utc(complaint.resolve_due_at),
        created_at=as_utc(complaint.created_at),
    )


def for_provider(session: Session, provider: ProviderRef, complaint_id: str) -> Complaint:
    """A complaint the provider was asked about; any other is as unknown as a missing one."""
    try:
        complaint = get(session, complaint_id)
    except NotFound:
        raise NotFound("No such complaint.") from None
    if complaint.provider_id != provider.id or complaint.provider_asked_at is None:
        raise NotFound("No such complaint.")
    return complaint


# ---------------------------------------------------------------------------- transitions
def _require_open(complaint: Complaint) -> None:
    if complaint.status == ComplaintStatus.RESOLVED.value:
        raise Conflict("This complaint is resolved; nothing more can be done with it.")


def acknowledge(
    session: Session,
    audit_key: KeySource,
    complaint: Complaint,
    actor: str,
    now: datetime | None = None,
) -> Complaint:
    """received → acknowledged: an operator has read it (the first clock stops)."""
    if complaint.status != ComplaintStatus.RECEIVED.value:
        _require_open(complaint)
        raise Conflict("This complaint is already acknowledged.")
    complaint.status = ComplaintStatus.ACKNOWLEDGED.value
    complaint.acknowledged_at, complaint.acknowledged_by = now or utcnow(), actor
    session.add(complaint)
    session.flush()
    audit.append(
        session,
        audit_key,
        "complaint.acknowledged",
        actor,
        {"complaint_id": complaint.id, "reference": complaint.reference},
    )
    return complaint


def ask_provider(
    session: Session,
    audit_key: KeySource,
    public_keys: Mapping[str, Ed25519PublicKey],
    complaint: Complaint,
    actor: str,
    question: str,
    named: str = "",
    now: datetime | None = None,
) -> Complaint:
    """acknowledged → awaiting_provider: the provider concerned (the one the complaint named, or
    the job or decision the operator names now) gets `complaint.opened` with the question."""
    _require_open(complaint)
    if complaint.status == ComplaintStatus.RECEIVED.value:
        raise Conflict("Acknowledge the complaint before asking the provider.")
    question = (question or "").strip()
    if not 1 <= len(question) <= MAX_MESSAGE:
        raise InvalidRequest(
            "Write the question for the provider (at most %(max)d characters).", max=MAX_MESSAGE
        )
    found = resolve_named(session, named, public_keys)
    if found is not None:
        complaint.job_id, complaint.token_jti = found.job_id, found.token_jti
        complaint.provider_id = found.provider_id
    if complaint.provider_id is None:
        raise InvalidRequest(
            "This complaint names no job or decision: give the job id or the decision token "
            "of the provider to ask."
        )
    complaint.status = ComplaintStatus.AWAITING_PROVIDER.value
    complaint.provider_question = question
    complaint.provider_asked_at = now or utcnow()
    session.add(complaint)
    session.flush()
    _tell_provider(session, complaint)
    audit.append(
        session,
        audit_key,
        "complaint.provider_asked",
        actor,
        {
            "complaint_id": complaint.id,
            "provider_id": complaint.provider_id,
            "job_id": complaint.job_id,
        },
    )
    return complaint


def answer(
    session: Session,
    audit_key: KeySource,
    provider: ProviderRef,
    complaint_id: str,
    text: str,
    content_removed: bool | None = None,
    now: datetime | None = None,
) -> Complaint:
    """The provider's answer (its latest replaces the one before, each audited); a complaint
    waiting for it goes back to the operator (acknowledged)."""
    complaint = for_provider(session, provider, complaint_id)
    _require_open(complaint)
    text = (text or "").strip()
    if not 1 <= len(text) <= MAX_MESSAGE:
        raise InvalidRequest("An answer is 1 to %(max)d characters.", max=MAX_MESSAGE)
    complaint.provider_answer, complaint.provider_content_removed = text, content_removed
    complaint.provider_answered_at = now or utcnow()
    if complaint.status == ComplaintStatus.AWAITING_PROVIDER.value:
        complaint.status = ComplaintStatus.ACKNOWLEDGED.value
    session.add(complaint)
    session.flush()
    audit.append(
        session,
        audit_key,
        "complaint.provider_answered",
        f"provider:{provider.id}",
        {
            "complaint_id": complaint.id,
            "answer_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "content_removed": content_removed,
        },
    )
    return complaint


def resolve(
    session: Session,
    audit_key: KeySource,
    complaint: Complaint,
    actor: str,
    outcome: str,
    message: str,
    now: datetime | None = None,
) -> Complaint:
    """Any open state → resolved, with the outcome and the message the complainant is told.
    Upheld, the job and decision it names are flagged in the log (`complaint.upheld`) and the
    provider concerned gets `complaint.resolved` (take the content down)."""
    _require_open(complaint)
    try:
        chosen = ComplaintOutcome(outcome)
    except ValueError:
        raise InvalidRequest("Choose the outcome: upheld, rejected or withdrawn.") from None
    message = (message or "").strip()
    if not 1 <= len(message) <= MAX_MESSAGE:
        raise InvalidRequest(
            "Write the message the complainant is told (at most %(max)d characters).",
            max=MAX_MESSAGE,
        )
    now = now or utcnow()
    if complaint.acknowledged_at is None:  # resolving is the strongest acknowledgement
        complaint.acknowledged_at, complaint.acknowledged_by = now, actor
    complaint.status = ComplaintStatus.RESOLVED.value
    complaint.outcome, complaint.resolution = chosen.value, message
    complaint.resolved_at, complaint.resolved_by = now, actor
    session.add(complaint)
    session.flush()
    audit.append(
        session,
        audit_key,
        "complaint.resolved",
        actor,
        {"complaint_id": complaint.id, "reference": complaint.reference, "outcome": chosen.value},
    )
    if chosen is ComplaintOutcome.UPHELD and (complaint.job_id or complaint.token_jti):
        audit.append(
            session,
            audit_key,
            "complaint.upheld",
            actor,
            {
                "complaint_id": complaint.id,
                "job_id": complaint.job_id,
                "token_jti": complaint.token_jti,
                "provider_id": complaint.provider_id,
            },
        )
    if complaint.provider_id is not None and complaint.provider_asked_at is not None:
        webhooks.enqueue(
            session,
            complaint.provider_id,
            WebhookEvent.COMPLAINT_RESOLVED,
            {
                "complaint_id": complaint.id,
                "reference": complaint.reference,
                "outcome": chosen.value,
                "job_id": complaint.job_id,
                "token_jti": complaint.token_jti,
            },
        )
    return complaint


# ---------------------------------------------------------------------------- mails
def received_mail(
    complaint: Complaint, secret: str, limits: Limits, public_url: str, sender: str
) -> EmailMessage:
    """To the complainant, in the language they chose: the reference, the status link and the
    published time limits."""
    link = f"{public_url.rstrip('/')}/complaints/{complaint.reference}?k={secret}"
    ack_by = as_utc(complaint.ack_due_at).strftime("%Y-%m-%d %H:%M UTC")
    resolve_by = as_utc(complaint.resolve_due_at).strftime("%Y-%m-%d %H:%M UTC")

    def render() -> tuple[str, str]:
        lines = [
            _("We received your complaint %(reference)s:", reference=complaint.reference),
            f"  {COMPLAINT_KINDS[complaint.kind]}",
            "",
            _(
                "An operator acknowledges it within %(hours)d hours (by %(when)s) and resolves "
                "it within %(days)d days (by %(by)s).",
                hours=limits.ack_hours,
                when=ack_by,
                days=limits.resolve_days,
                by=resolve_by,
            ),
            "",
            _("Follow it here (keep this link to yourself):"),
            link,
        ]
        subject = _("Your complaint %(reference)s", reference=complaint.reference)
        return subject, "\n".join(lines)

    return compose(sender, complaint.email, (complaint.language,), render)


def resolved_mail(complaint: Complaint, sender: str) -> EmailMessage:
    """To the complainant, in the language they chose: the outcome and the operator's message."""
    outcome = ComplaintOutcome(complaint.outcome or ComplaintOutcome.REJECTED)

    def render() -> tuple[str, str]:
        lines = [
            _(
                "Your complaint %(reference)s is resolved: %(outcome)s.",
                reference=complaint.reference,
                outcome=COMPLAINT_OUTCOMES[outcome],
            ),
            "",
            complaint.resolution,
        ]
        if outcome is ComplaintOutcome.UPHELD and complaint.provider_id:
            lines += ["", _("The provider concerned has been told to take the content down.")]
        subject = _(
            "Your complaint %(reference)s: %(outcome)s",
            reference=complaint.reference,
            outcome=COMPLAINT_OUTCOMES[outcome],
        )
        return subject, "\n".join(lines)

    return compose(sender, complaint.email, (complaint.language,), render)


# ---------------------------------------------------------------------------- retention
def due_evidence(session: Session, cutoff: datetime) -> list[str]:
    """Complaints resolved before `cutoff` whose evidence is still kept."""
    return list(
        session.exec(
            select(Complaint.id).where(
                Complaint.status == ComplaintStatus.RESOLVED.value,
                col(Complaint.resolved_at) < cutoff,
                col(Complaint.evidence_key).is_not(None),
            )
        )
    )


def destroy_evidence(
    session: Session, store: MediaStore, ids: list[str], now: datetime | None = None
) -> dict[str, int]:
    """Forget the evidence of these complaints; the files go once the transaction committed.
    The complaint (what was said, its outcome) stays."""
    keys = []
    for complaint in session.exec(select(Complaint).where(col(Complaint.id).in_(ids))):
        if complaint.evidence_key:
            keys.append(complaint.evidence_key)
        complaint.evidence_key, complaint.evidence_destroyed_at = None, now or utcnow()
        session.add(complaint)
    session.flush()

    def delete() -> None:
        for key in keys:
            store.delete(key)

    db.after_commit(session, delete)
    return {"count": len(ids), "files": len(keys)}
