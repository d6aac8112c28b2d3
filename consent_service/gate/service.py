"""Gate jobs: accept media for a planned edit, find and match every face, decide, record."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from consent_service.accounts.models import Subject
from consent_service.audit import service as audit
from consent_service.biometrics.faces import DetectedFace
from consent_service.biometrics.images import decode_image
from consent_service.biometrics.matching import identify
from consent_service.biometrics.service import FaceMatching
from consent_service.consent import policy
from consent_service.consent.service import current_grants
from consent_service.db import unit_of_work
from consent_service.errors import InvalidRequest, MediaRejected, NotFound
from consent_service.gate.models import Decision, Finding, GateJob, MediaItem
from consent_service.providers.models import Provider
from consent_service.storage import MediaStore
from consent_service.timeutil import as_utc, utcnow
from consent_service.vocabulary import JobStatus, Modality, Operation, Outcome, Role

MAX_MEDIA_ITEMS = 10


@dataclass(frozen=True)
class Upload:
    role: str
    filename: str
    data: bytes


def parse_operation(value: str | None) -> Operation:
    try:
        operation = Operation(value or "")
    except ValueError:
        raise InvalidRequest(
            f"Unknown operation {value!r}; use one of: {', '.join(o.value for o in Operation)}."
        ) from None
    if operation.modality is not Modality.FACE:
        raise InvalidRequest(
            f"{operation.value} needs voice gating, which this server does not "
            "offer yet; only face operations are gated."
        )
    return operation


def submit_job(
    session: Session,
    store: MediaStore,
    provider: Provider,
    operation: str | None,
    uploads: list[Upload],
    idempotency_key: str | None = None,
) -> tuple[GateJob, bool]:
    """Record a queued job with its media. Returns (job, created); a repeated idempotency key
    returns the first job. The caller commits, then publishes the job to the worker."""
    if idempotency_key is not None:
        idempotency_key = idempotency_key.strip()
        if not 1 <= len(idempotency_key) <= 200:
            raise InvalidRequest("Idempotency-Key must be 1 to 200 characters.")
        existing = session.exec(
            select(GateJob).where(
                GateJob.provider_id == provider.id, GateJob.idempotency_key == idempotency_key
            )
        ).first()
        if existing is not None:
            return existing, False
    op = parse_operation(operation)
    if not uploads:
        raise InvalidRequest("Attach at least one image as `source` or `target`.")
    if len(uploads) > MAX_MEDIA_ITEMS:
        raise InvalidRequest(f"At most {MAX_MEDIA_ITEMS} media items per job.")
    for u in uploads:
        if u.role not in {r.value for r in Role}:
            raise InvalidRequest(f"Media role must be source or target, not {u.role!r}.")
    job = GateJob(provider_id=provider.id, operation=op.value, idempotency_key=idempotency_key)
    session.add(job)
    session.flush()
    for position, u in enumerate(uploads):
        session.add(
            MediaItem(
                job_id=job.id,
                position=position,
                role=u.role,
                filename=(u.filename or "")[:300],
                size=len(u.data),
                sha256=hashlib.sha256(u.data).hexdigest(),
                storage_key=store.put(u.data),
            )
        )
    session.flush()
    return job, True


def get_job(session: Session, provider: Provider, job_id: str) -> GateJob:
    """A provider's own job; another provider's id is indistinguishable from a missing one."""
    job = session.get(GateJob, job_id) if isinstance(job_id, str) and len(job_id) <= 32 else None
    if job is None or job.provider_id != provider.id:
        raise NotFound("No such job.")
    return job


@dataclass
class _FaceSeen:
    position: int
    role: Role
    box: tuple[int, int, int, int]
    subject_id: int | None
    ambiguous: bool


@dataclass
class _Analysis:
    faces: list[_FaceSeen] = field(default_factory=list)
    problems: dict[int, tuple[str, str]] = field(default_factory=dict)  # position → (code, message)


def _faces_in(data: bytes, matching: FaceMatching) -> list[DetectedFace]:
    """Every distinct face in one media item."""
    return matching.embedder.detect(decode_image(data, matching.max_pixels))


def _analyse(
    session: Session, items: list[MediaItem], store: MediaStore, matching: FaceMatching
) -> _Analysis:
    """Find and identify every person in the job's media; note media that cannot be used."""
    result = _Analysis()
    gallery = matching.gallery.current(session, Modality.FACE)
    for item in items:
        try:
            if item.storage_key is None:
                raise KeyError(item.position)
            faces = _faces_in(store.get(item.storage_key), matching)
        except KeyError:
            result.problems[item.position] = ("rejected_input", "The media is no longer stored.")
            continue
        except MediaRejected as exc:
            result.problems[item.position] = ("rejected_input", str(exc))
            continue
        if not faces:
            result.problems[item.position] = ("no_face_found", "No face was found in this image.")
        for face in faces:
            m = identify(gallery, face.embedding, matching.tolerance, matching.margin)
            result.faces.append(
                _FaceSeen(item.position, Role(item.role), face.box, m.subject_id, m.ambiguous)
            )
    return result


def process_job(
    engine: Engine,
    job_id: str,
    store: MediaStore,
    matching: FaceMatching,
    audit_key: bytes,
    max_attempts: int,
) -> str:
    """The worker's task body: safe to run any number of times, concurrently; decides once."""
    with unit_of_work(engine) as s:
        job = s.get(GateJob, job_id)
        if job is None or job.status in (JobStatus.DECIDED.value, JobStatus.FAILED.value):
            return job.status if job else "missing"
        job.attempts += 1  # counted and committed before any decoding
        job.status = JobStatus.PROCESSING.value
        job.updated_at = utcnow()
        attempts = job.attempts
    if attempts > max_attempts:
        return _fail(
            engine,
            job_id,
            store,
            audit_key,
            f"The media could not be processed after {max_attempts} attempts.",
        )
    with Session(engine, expire_on_commit=False) as s:
        items = list(
            s.exec(select(MediaItem).where(MediaItem.job_id == job_id).order_by(MediaItem.position))
        )
        analysis = _analyse(s, items, store, matching)
    try:
        status = _record_decision(engine, job_id, analysis, audit_key)
    except IntegrityError:  # a concurrent delivery recorded the decision first
        return JobStatus.DECIDED.value
    _destroy_media(engine, job_id, store, audit_key)
    return status


def _record_decision(engine: Engine, job_id: str, analysis: _Analysis, audit_key: bytes) -> str:
    with unit_of_work(engine) as s:
        job = s.exec(select(GateJob).where(GateJob.id == job_id).with_for_update()).one()
        if job.status in (JobStatus.DECIDED.value, JobStatus.FAILED.value):
            return job.status
        operation = Operation(job.operation)
        now = utcnow()
        # Grants are read here, in the transaction that records the decision, so a revocation
        # committed while the faces were being matched is honoured.
        matched = {f.subject_id for f in analysis.faces if f.subject_id is not None}
        subjects = {sub.id: sub for sub in s.exec(select(Subject).where(Subject.id.in_(matched)))}  # type: ignore[union-attr]
        grants = current_grants(s, matched)
        outcomes: list[Outcome] = []
        for face in analysis.faces:
            verdict = _verdict(face, subjects, grants, operation, job.provider_id, now)
            outcomes.append(verdict.outcome)
            s.add(
                Finding(
                    job_id=job_id,
                    media_position=face.position,
                    role=face.role.value,
                    outcome=verdict.outcome.value,
                    subject_id=face.subject_id
                    if verdict.outcome is not Outcome.UNENROLLED
                    else None,
                    grant_id=verdict.grant.grant_id if verdict.grant else None,
                    grant_version=verdict.grant.version if verdict.grant else None,
                    box=list(face.box),
                )
            )
        kind, reasons = policy.decide_job(outcomes, [c for c, _ in analysis.problems.values()])
        s.add(Decision(job_id=job_id, decision=kind.value, reasons=reasons, created_at=now))
        for item in s.exec(select(MediaItem).where(MediaItem.job_id == job_id)):
            if item.position in analysis.problems:
                item.rejected = analysis.problems[item.position][1]
        s.flush()  # the decision's primary key is the job id: a second decision fails here
        job.status = JobStatus.DECIDED.value
        job.updated_at = now
        audit.append(
            s,
            audit_key,
            "gate.decided",
            f"provider:{job.provider_id}",
            {
                "job_id": job_id,
                "operation": job.operation,
                "decision": kind.value,
                "reasons": reasons,
                "findings": [o.value for o in outcomes],
            },
        )
        return job.status


def _verdict(
    face: _FaceSeen,
    subjects: dict[int, Subject],
    grants,
    operation: Operation,
    provider_id: str,
    now,
) -> policy.PersonVerdict:
    if face.ambiguous:
        return policy.PersonVerdict(Outcome.AMBIGUOUS)
    subject = subjects.get(face.subject_id) if face.subject_id is not None else None
    if subject is None:
        return policy.PersonVerdict(Outcome.UNENROLLED)
    return policy.judge_person(
        [g for g in grants if g.subject_id == subject.id],
        protect_only=subject.protect_only,
        operation=operation,
        role=face.role,
        provider_id=provider_id,
        now=now,
    )


def _fail(engine: Engine, job_id: str, store: MediaStore, audit_key: bytes, reason: str) -> str:
    with unit_of_work(engine) as s:
        job = s.exec(select(GateJob).where(GateJob.id == job_id).with_for_update()).one()
        if job.status in (JobStatus.DECIDED.value, JobStatus.FAILED.value):
            return job.status
        job.status, job.error, job.updated_at = JobStatus.FAILED.value, reason, utcnow()
        audit.append(
            s,
            audit_key,
            "gate.failed",
            f"provider:{job.provider_id}",
            {"job_id": job_id, "reason": reason},
        )
    _destroy_media(engine, job_id, store, audit_key)
    return JobStatus.FAILED.value


def _destroy_media(engine: Engine, job_id: str, store: MediaStore, audit_key: bytes) -> None:
    with unit_of_work(engine) as s:
        items = [
            i
            for i in s.exec(select(MediaItem).where(MediaItem.job_id == job_id))
            if i.storage_key is not None
        ]
        for item in items:
            store.delete(item.storage_key)
            item.storage_key = None
        if items:
            audit.append(
                s,
                audit_key,
                "media.destroyed",
                "system",
                {"job_id": job_id, "sha256": [i.sha256 for i in items]},
            )


def subject_reference(pseudonym_key: bytes, provider_id: str, subject_public_id: str) -> str:
    """Stable per provider, unlinkable across providers, reveals nothing about the person."""
    return hmac.new(
        pseudonym_key, f"{provider_id}:{subject_public_id}".encode(), hashlib.sha256
    ).hexdigest()[:32]


def job_view(session: Session, job: GateJob, pseudonym_key: bytes) -> dict:
    """What a provider may see of its job: decision, reasons, findings; never biometrics."""
    decision = session.get(Decision, job.id)
    items = list(
        session.exec(
            select(MediaItem).where(MediaItem.job_id == job.id).order_by(MediaItem.position)
        )
    )
    findings = list(
        session.exec(select(Finding).where(Finding.job_id == job.id).order_by(Finding.id))
    )
    public_ids = {
        sub.id: sub.public_id
        for sub in session.exec(
            select(Subject).where(Subject.id.in_({f.subject_id for f in findings if f.subject_id}))
        )
    }  # type: ignore[union-attr]
    return {
        "id": job.id,
        "status": job.status,
        "operation": job.operation,
        "created_at": as_utc(job.created_at).isoformat(),
        "attempts": job.attempts,
        "error": job.error,
        "decision": decision.decision if decision else None,
        "reasons": decision.reasons if decision else [],
        "media": [
            {
                "position": i.position,
                "role": i.role,
                "filename": i.filename,
                "sha256": i.sha256,
                "error": i.rejected,
            }
            for i in items
        ],
        "findings": [
            {
                "media": f.media_position,
                "role": f.role,
                "outcome": f.outcome,
                "subject_ref": (
                    subject_reference(pseudonym_key, job.provider_id, public_ids[f.subject_id])
                    if f.subject_id in public_ids
                    else None
                ),
                "box": f.box,
            }
            for f in findings
        ],
    }
