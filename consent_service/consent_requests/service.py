"""Consent requests, written once for the provider API, the person's inbox and the beat task.

States: `pending` → `approved` | `declined` | `expired`; an answered request never changes
again. Expiry is both evaluated on read (a pending request past `expires_at` is shown, and
treated, as expired) and written by the periodic task `consent_requests.expire`, which also
wipes the sealed faces and tells the provider."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import numpy as np
from flask_babel import gettext as _
from sqlalchemy import or_
from sqlmodel import Session, col, select

from consent_service.accounts.models import Subject, User
from consent_service.accounts.service import find_user, normalize_email, require_verified
from consent_service.audit import service as audit
from consent_service.biometrics.models import BiometricTemplate
from consent_service.biometrics.service import open_template
from consent_service.consent import service as consent
from consent_service.consent_requests.faces import (
    open_request_face,
    seal_request_face,
    wipe_request_face,
)
from consent_service.consent_requests.models import ConsentRequest
from consent_service.consent_requests.schemas import ConsentRequestPublic, RequestShown
from consent_service.crypto import Envelope, KeySource
from consent_service.errors import N_, Conflict, DomainError, InvalidRequest, Msgid, NotFound
from consent_service.gate import service as gate
from consent_service.gate.claims import subject_reference
from consent_service.gate.decisions import redecide
from consent_service.gate.finding_faces import open_finding_face
from consent_service.gate.models import Decision, Finding, FindingFace, GateJob
from consent_service.i18n.labels import MODALITIES, OPERATION_DESCRIPTIONS, ROLE_DESCRIPTIONS
from consent_service.keyring import Pseudonyms
from consent_service.mail import compose, mail_languages
from consent_service.providers.models import Provider, ProviderRef
from consent_service.rows import row_id
from consent_service.timeutil import as_utc, utcnow
from consent_service.tokens.service import DecisionSigner
from consent_service.vocabulary import (
    ConsentRequestStatus,
    DecisionKind,
    Modality,
    Operation,
    Outcome,
    Role,
)
from consent_service.webhooks import service as webhooks

PENDING = ConsentRequestStatus.PENDING
APPROVED = ConsentRequestStatus.APPROVED
DECLINED = ConsentRequestStatus.DECLINED
EXPIRED = ConsentRequestStatus.EXPIRED
# Findings a request can be opened for: the person may still consent.
ASKABLE = {
    Outcome.UNENROLLED.value,
    Outcome.AMBIGUOUS.value,
    Outcome.NOT_COVERED.value,
    Outcome.EXPIRED.value,
}


class RequestClosed(Conflict):
    """The request was already answered, or expired."""

    title = "Consent request closed"


CLOSED: dict[ConsentRequestStatus, str] = {
    APPROVED: N_("This request is approved; it can no longer be answered."),
    DECLINED: N_("This request is declined; it can no longer be answered."),
    EXPIRED: N_("This request is expired; it can no longer be answered."),
}


class NotTheRightPerson(DomainError):
    """The signed-in person is not the one the request is for."""

    status = 403
    title = "Not the person asked"


@dataclass(frozen=True)
class RequestSpec:
    """What a provider asks: for a job's finding (index or subject_ref) and/or an e-mail."""

    job_id: str | None = None
    finding: int | None = None
    subject_ref: str | None = None
    email: str | None = None
    operation: Operation | None = None  # the job's operation when None
    roles: tuple[Role, ...] = ()  # the finding's role when empty
    purpose: str = ""
    message: str = ""
    valid_until: datetime | None = None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def status_of(req: ConsentRequest, now: datetime | None = None) -> ConsentRequestStatus:
    """The request's status now: a pending request past its expiry is expired."""
    if req.status == PENDING and as_utc(req.expires_at) <= as_utc(now or utcnow()):
        return EXPIRED
    return ConsentRequestStatus(req.status)


def _pick_finding(
    session: Session, provider: ProviderRef, spec: RequestSpec, pseudonyms: Pseudonyms
) -> Finding:
    job = gate.get_job(session, provider, spec.job_id or "")
    decision = session.get(Decision, job.id)
    if decision is None or decision.decision != DecisionKind.NEEDS_CONSENT.value:
        raise InvalidRequest(
            "This job is not waiting for consent (its decision is not needs_consent)."
        )
    findings = list(
        session.exec(
            select(Finding)
            .where(Finding.job_id == job.id, Finding.revision == decision.revision)
            .order_by(col(Finding.id))
        )
    )
    chosen: Finding | None = None
    if spec.finding is not None:
        if not 0 <= spec.finding < len(findings):
            raise InvalidRequest(
                "The job has %(num)d findings; `finding` is an index.", num=len(findings)
            )
        chosen = findings[spec.finding]
    elif spec.subject_ref:
        subjects = {
            s.id: s
            for s in session.exec(
                select(Subject).where(
                    col(Subject.id).in_({f.subject_id for f in findings if f.subject_id})
                )
            )
        }
        for f in findings:
            if f.subject_id in subjects and hmac.compare_digest(
                subject_reference(pseudonyms, provider.id, subjects[f.subject_id]),
                spec.subject_ref,
            ):
                chosen = f
                break
        if chosen is None:
            raise InvalidRequest("No finding of this job has that subject_ref.")
    else:
        raise InvalidRequest("Name the finding: `finding` (its index) or `subject_ref`.")
    if chosen.outcome == Outcome.ASSURANCE_TOO_LOW:
        # The answer would come from the same account whose enrollment is not proof enough.
        raise InvalidRequest(
            "This person enrolled with less assurance than you require for this operation: "
            "a consent request cannot change that. They can enroll again with a live consent "
            "session, or you can lower your minimum."
        )
    if chosen.outcome not in ASKABLE:
        raise InvalidRequest(
            "This finding's outcome is %(outcome)s: there is nothing to ask this person.",
            outcome=chosen.outcome,
        )
    return chosen


def open_request(
    session: Session,
    envelope: Envelope,
    audit_key: KeySource,
    pseudonyms: Pseudonyms,
    provider: ProviderRef,
    spec: RequestSpec,
    ttl: timedelta,
    idempotency_key: str | None = None,
) -> tuple[ConsentRequest, str | None, bool]:
    """Record a pending request. Returns (request, link secret, created): the secret (for the
    mailed link) only when created; a repeated idempotency key returns the first request.
    The caller commits, then mails the link (`notify`)."""
    if idempotency_key is not None:
        existing = session.exec(
            select(ConsentRequest).where(
                ConsentRequest.provider_id == provider.id,
                ConsentRequest.idempotency_key == idempotency_key,
            )
        ).first()
        if existing is not None:
            return existing, None, False
    now = utcnow()
    finding = _pick_finding(session, provider, spec, pseudonyms) if spec.job_id else None
    if finding is None and (spec.finding is not None or spec.subject_ref):
        raise InvalidRequest("`finding` and `subject_ref` need a `job_id`.")
    # The operation and the roles are parsed once, at the edge (`ConsentRequestCreate`); what
    # is left here is the request's own rule: what is not given is the job's and the finding's.
    operation = spec.operation or (
        Operation(gate.get_job(session, provider, spec.job_id).operation) if spec.job_id else None
    )
    if operation is None:
        raise InvalidRequest(
            "Unknown operation %(operation)s; use one of: %(known)s.",
            operation=repr(None),
            known=", ".join(o.value for o in Operation),
        )
    roles = sorted({r.value for r in spec.roles} or ({finding.role} if finding else set()))
    if not roles:
        raise InvalidRequest("Give the roles asked for: source and/or target.")
    if spec.valid_until is not None and as_utc(spec.valid_until) <= now:
        raise InvalidRequest("`valid_until` must be in the future.")
    # An address is checked by the one rule every edge uses (accounts: sign-up, sign-in).
    email = normalize_email(spec.email) if spec.email else None
    face: FindingFace | None = None
    if finding is not None and finding.subject_id is None:
        face = session.get(FindingFace, finding.id)
        if face is None or as_utc(face.expires_at) <= now:
            raise InvalidRequest(
                "The face of this finding is no longer kept; submit the job again to ask."
            )
        if email is None:
            raise InvalidRequest(
                "This person is not enrolled: give the `email` to send the request to."
            )
    if finding is None and email is None:
        raise InvalidRequest("Ask for a job's finding (`job_id` and `finding`) or an `email`.")
    secret = secrets.token_urlsafe(24)
    req = ConsentRequest(
        provider_id=provider.id,
        email=email,
        subject_id=finding.subject_id if finding else None,
        job_id=finding.job_id if finding else None,
        finding_id=finding.id if finding else None,
        operation=operation.value,
        roles=roles,
        purpose=spec.purpose.strip(),  # its length and the message's: ConsentRequestCreate
        message=spec.message.strip(),
        valid_until=spec.valid_until,
        expires_at=now + ttl,
        idempotency_key=idempotency_key,
        link_hash=_hash(secret),
        created_at=now,
    )
    if face is not None:
        seal_request_face(envelope, req, face.modality, open_finding_face(envelope, face))
    session.add(req)
    session.flush()
    audit.append(
        session,
        audit_key,
        "consent_request.opened",
        f"provider:{provider.id}",
        {"consent_request_id": req.id, "job_id": req.job_id, "operation": req.operation},
        subject_id=req.subject_id,
    )
    return req, secret, True


def get_for_provider(session: Session, provider: ProviderRef, request_id: str) -> ConsentRequest:
    req = session.get(ConsentRequest, request_id) if len(request_id or "") <= 32 else None
    if req is None or req.provider_id != provider.id:
        raise NotFound("No such consent request.")
    return req


def list_for_provider(
    session: Session, provider: ProviderRef, limit: int = 100
) -> list[ConsentRequestPublic]:
    """A provider's latest consent requests, newest first, as the provider may see them."""
    rows = session.exec(
        select(ConsentRequest)
        .where(ConsentRequest.provider_id == provider.id)
        .order_by(col(ConsentRequest.created_at).desc())
        .limit(limit)
    )
    return [provider_view(r) for r in rows]


def provider_view(req: ConsentRequest) -> ConsentRequestPublic:
    """What the provider sees: never the face, nor the address of a person it did not name."""
    return ConsentRequestPublic(
        id=req.id,
        status=status_of(req),
        job_id=req.job_id,
        email=req.email,  # only ever the address the provider itself gave
        operation=Operation(req.operation),
        roles=[Role(r) for r in req.roles],
        purpose=req.purpose,
        message=req.message,
        valid_until=as_utc(req.valid_until) if req.valid_until else None,
        expires_at=as_utc(req.expires_at),
        created_at=as_utc(req.created_at),
        answered_at=as_utc(req.answered_at) if req.answered_at else None,
        grant_id=req.grant_id,
    )


def request_shown(session: Session, req: ConsentRequest) -> RequestShown:
    """The request as the person asked sees it (inbox, request page)."""
    provider = session.get(Provider, req.provider_id)
    return RequestShown(
        id=req.id,
        provider=provider.name if provider else "?",
        operation=Operation(req.operation),
        roles=[Role(r) for r in req.roles],
        purpose=req.purpose,
        message=req.message,
        until=as_utc(req.valid_until).date().isoformat() if req.valid_until else None,
        expires=as_utc(req.expires_at).isoformat(timespec="minutes"),
        status=status_of(req),
        from_face=req.modality is not None,
        modality=Modality(req.modality or Modality.FACE),
    )


@dataclass(frozen=True)
class Recipient:
    address: str
    language: str | None  # the account's language (`en`, `zh-CN`); None: no account, or unset


def recipient(session: Session, req: ConsentRequest) -> Recipient | None:
    """Where the link goes: a person the gate named hears at their account's address (the
    provider never learns it); anyone else at the address the provider gave. The mail is in the
    language of the account behind the address, if there is one."""
    if req.subject_id is not None:
        subject = session.get(Subject, req.subject_id)
        user = session.get(User, subject.user_id) if subject else None
        return Recipient(user.email, user.language) if user and user.email else None
    if not req.email:
        return None
    user = find_user(session, req.email)
    return Recipient(req.email, user.language if user else None)


def notification(
    req: ConsentRequest,
    to: Recipient,
    secret: str,
    provider_name: str,
    public_url: str,
    sender: str,
) -> EmailMessage:
    """The mail asking for consent, in the recipient's language, or in Chinese and English when
    it is unknown. Rendered inside an app context (the API request that opened it)."""
    link = f"{public_url.rstrip('/')}/requests/{req.id}?k={secret}"
    operation = Operation(req.operation)
    expires = as_utc(req.expires_at).strftime("%Y-%m-%d %H:%M UTC")

    def render() -> tuple[str, str]:
        modality = MODALITIES[operation.modality]
        until = as_utc(req.valid_until).date().isoformat() if req.valid_until else _("no end date")
        lines = [
            _(
                "%(provider)s asks for your consent to this edit of your %(modality)s:",
                provider=provider_name,
                modality=modality,
            ),
            f"  {OPERATION_DESCRIPTIONS[operation]} ({operation.value})",
            _("Your role:"),
            *(f"  {ROLE_DESCRIPTIONS[Role(r)]}" for r in req.roles),
            _("Why: %(purpose)s", purpose=req.purpose or "-"),
            _("Until: %(until)s", until=until),
        ]
        if req.message:
            lines.append(_("Their message: %(message)s", message=req.message))
        lines += [
            "",
            _("Sign in or sign up, then approve or decline:"),
            link,
            "",
            _("This request expires on %(expires)s.", expires=expires),
            _("If you do nothing, nothing is granted."),
        ]
        subject = _(
            "%(provider)s asks for your consent to edit your %(modality)s",
            provider=provider_name,
            modality=modality,
        )
        return subject, "\n".join(lines)

    return compose(sender, to.address, mail_languages(to.language), render)


# ---------------------------------------------------------------------------- the person's side
def may_open(
    req: ConsentRequest, user: User, managed: Collection[int], link_secret: str | None
) -> bool:
    """An account sees a request sent to its address, about a subject it acts for (`managed`:
    its own and its children's subject ids), or opened by its link."""
    if link_secret and hmac.compare_digest(_hash(link_secret), req.link_hash):
        return True
    if req.subject_id is not None:
        return req.subject_id in managed
    return bool(req.email) and normalize_email(user.email or "") == req.email


def named_elsewhere(req: ConsentRequest, acting: Subject, managed: list[Subject]) -> Subject | None:
    """The account's other subject (its own, or a child) this request is about, when it is not
    the one acted for: it can be answered only once that subject is selected."""
    if req.subject_id is None or req.subject_id == acting.id:
        return None
    return next((s for s in managed if s.id == req.subject_id), None)


def inbox(
    session: Session, user: User, subject: Subject, opened: list[str]
) -> list[ConsentRequest]:
    """The requests of the subject acted for (the account's own or a child's), newest first,
    with those sent to the account's address or opened by link (`opened`)."""
    clauses = [col(ConsentRequest.subject_id) == subject.id]
    if user.email:
        clauses.append(col(ConsentRequest.email) == normalize_email(user.email))
    if opened:
        clauses.append(col(ConsentRequest.id).in_(opened[-50:]))
    return list(
        session.exec(
            select(ConsentRequest)
            .where(or_(*clauses))
            .order_by(col(ConsentRequest.created_at).desc())
            .limit(200)
        )
    )


@dataclass(frozen=True)
class Tolerances:
    """Identification distances per modality (FACE_TOLERANCE, VOICE_TOLERANCE)."""

    face: float
    voice: float


def check_person(
    session: Session,
    envelope: Envelope,
    req: ConsentRequest,
    user: User,
    subject: Subject,
    tolerances: Tolerances,
) -> None:
    """Raise NotTheRightPerson unless the signed-in person is the one asked: the named subject;
    for a face found in a job, a person whose enrolled templates match it within the
    identification tolerance; for an e-mail request, the account holding that address."""
    if req.subject_id is not None:
        if req.subject_id != subject.id:
            raise NotTheRightPerson("This request is for someone else; you cannot answer it.")
        return
    wanted = open_request_face(envelope, req)
    if wanted is None:
        if req.job_id is not None or normalize_email(user.email or "") != req.email:
            raise NotTheRightPerson(
                "This request was sent to %(email)s; sign in with that address to answer it.",
                email=req.email,
            )
        return
    modality = req.modality or "face"
    templates = session.exec(
        select(BiometricTemplate).where(
            BiometricTemplate.subject_id == subject.id, BiometricTemplate.modality == modality
        )
    ).all()
    if not templates:
        raise NotTheRightPerson(
            "Enroll your %(modality)s first: the request is for the person in the provider's "
            "media, and only your enrolled %(modality)s can show that it is you.",
            modality=Msgid(modality),
        )
    tolerance = tolerances.face if modality == "face" else tolerances.voice
    best = min(
        float(np.linalg.norm(open_template(envelope, t) - wanted))
        for t in templates
        if len(t.ciphertext)
    )
    if best > tolerance:
        raise NotTheRightPerson(
            "Your enrolled %(modality)s does not match the person in the provider's media, so "
            "you cannot approve this request. Only that person can.",
            modality=Msgid(modality),
        )


def _close(
    session: Session,
    audit_key: KeySource,
    req: ConsentRequest,
    status: ConsentRequestStatus,
    actor: str,
    now: datetime,
    guardian: dict[str, Any] | None = None,
) -> None:
    req.status, req.answered_at = status.value, now
    wipe_request_face(req)
    payload: dict[str, Any] = {
        "consent_request_id": req.id,
        "job_id": req.job_id,
        "grant_id": req.grant_id,
    }
    if guardian is not None:  # answered by a guardian for a child under 14
        payload["guardian"] = guardian
    audit.append(
        session,
        audit_key,
        f"consent_request.{status.value}",
        actor,
        payload,
        subject_id=req.subject_id,
    )
    webhooks.consent_request_answered(
        session, req.provider_id, req.id, status, job_id=req.job_id, grant_id=req.grant_id
    )


def _require_pending(req: ConsentRequest, now: datetime) -> None:
    status = status_of(req, now)
    if status != PENDING:
        raise RequestClosed(CLOSED[status])


def check_answerable(
    session: Session,
    envelope: Envelope,
    req: ConsentRequest,
    user: User,
    subject: Subject,
    tolerances: Tolerances,
) -> None:
    """What `approve` checks before anything else, checked before the person's live step-up
    check: a verified account, a pending request, the right person."""
    require_verified(user)
    _require_pending(req, utcnow())
    check_person(session, envelope, req, user, subject, tolerances)


@dataclass(frozen=True)
class Gate:
    """What re-deciding the waiting job needs."""

    signer: DecisionSigner
    pseudonyms: Pseudonyms


def approve(
    session: Session,
    envelope: Envelope,
    audit_key: KeySource,
    req: ConsentRequest,
    user: User,
    subject: Subject,
    tolerances: Tolerances,
    evidence: consent.Evidence,
    gate_keys: Gate,
) -> ConsentRequest:
    """Check the person, grant exactly what was asked (for this provider), close the request
    and decide the waiting job again. The caller commits, then publishes the webhooks.

    `subject` is the one answered for: the account's own, or a child its guardian acts for (the
    face check then uses the child's templates, and `evidence.guardian` names the guardian).
    Only a verified account answers: an e-mail request is for whoever proved that address."""
    require_verified(user)
    subject_id = row_id(subject)  # a stored subject: the one the account acts for
    now = utcnow()
    # Lock the row: two answers to one request cannot both win.
    req = session.exec(
        select(ConsentRequest).where(ConsentRequest.id == req.id).with_for_update()
    ).one()
    _require_pending(req, now)
    check_person(session, envelope, req, user, subject, tolerances)
    # For a job, the purpose it stated: approving grants that job's purpose, not every one.
    job = session.get(GateJob, req.job_id) if req.job_id is not None else None
    grant = consent.grant(
        session,
        audit_key,
        subject_id,
        consent.GrantRequest(
            operations=[Operation(req.operation)],
            roles=[Role(r) for r in req.roles],
            all_providers=False,
            provider_ids=[req.provider_id],
            purpose=req.purpose,
            valid_until=req.valid_until,
            purposes=[job.purpose] if job is not None and job.purpose else [],
        ),
        evidence,
    )
    req.grant_id, req.answered_by = grant.grant_id, user.id
    was_unnamed = req.subject_id is None
    req.subject_id = subject_id
    _close(session, audit_key, req, APPROVED, evidence.actor, now, evidence.guardian)
    if req.job_id is not None:
        redecide(
            session,
            req.job_id,
            {req.finding_id: subject_id} if was_unnamed and req.finding_id else {},
            audit_key,
            gate_keys.signer,
            gate_keys.pseudonyms,
            cause=f"consent request {req.id}",
        )
    session.flush()
    return req


def decline(
    session: Session,
    audit_key: KeySource,
    req: ConsentRequest,
    user: User,
    actor: str,
    subject: Subject | None = None,
    guardian: dict[str, Any] | None = None,
) -> ConsentRequest:
    """Close the request unanswered. A request naming a subject is declined only for that
    subject (`subject`, the one acted for); `guardian` when a guardian declines for a child.
    Only a verified account answers."""
    require_verified(user)
    now = utcnow()
    req = session.exec(
        select(ConsentRequest).where(ConsentRequest.id == req.id).with_for_update()
    ).one()
    _require_pending(req, now)
    if subject is not None and req.subject_id is not None and req.subject_id != subject.id:
        raise NotTheRightPerson("This request is for someone else; you cannot answer it.")
    req.answered_by = user.id
    _close(session, audit_key, req, DECLINED, actor, now, guardian)
    session.flush()
    return req


def expire_due(session: Session, audit_key: KeySource, now: datetime | None = None) -> int:
    """Expire pending requests past their time (wiping their faces, telling the provider) and
    purge the kept faces of findings past theirs. Returns the number of requests expired."""
    now = now or utcnow()
    due = session.exec(
        select(ConsentRequest)
        .where(col(ConsentRequest.status) == PENDING, col(ConsentRequest.expires_at) <= now)
        .with_for_update()
        .limit(500)
    ).all()
    for req in due:
        _close(session, audit_key, req, EXPIRED, "system", now)
    for face in session.exec(select(FindingFace).where(col(FindingFace.expires_at) <= now)):
        session.delete(face)
    session.flush()
    return len(due)
