"""Gate jobs: accept media for a planned edit, find and match every face, decide, record."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from consent_service.accounts.models import Subject
from consent_service.audit import service as audit
from consent_service.biometrics.images import decode_image
from consent_service.biometrics.matching import Gallery, Match, identify
from consent_service.biometrics.service import FaceMatching
from consent_service.biometrics.tracks import FaceTrack, identify_track, track_faces
from consent_service.biometrics.voice_service import VoiceMatching, require_voice, speakers_in
from consent_service.consent import policy
from consent_service.consent.service import current_grants
from consent_service.crypto import Envelope
from consent_service.db import unit_of_work
from consent_service.errors import InvalidRequest, MediaRejected, NotFound
from consent_service.gate.finding_faces import keep_finding_face
from consent_service.gate.models import Decision, DecisionRevision, Finding, GateJob, MediaItem
from consent_service.media.sniff import MediaKind, sniff
from consent_service.providers.models import Provider
from consent_service.storage import MediaStore
from consent_service.timeutil import as_utc, utcnow
from consent_service.tokens.service import DecisionSigner, decision_claims
from consent_service.vocabulary import (
    DecisionKind,
    JobStatus,
    Modality,
    Operation,
    Outcome,
    Role,
)
from consent_service.webhooks import service as webhooks

MAX_MEDIA_ITEMS = 10
PROVIDER_SUSPENDED = (
    "The provider was suspended before this job was decided: no decision was made and the "
    "media was destroyed."
)


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
            "Unknown operation %(operation)s; use one of: %(known)s.",
            operation=repr(value),
            known=", ".join(o.value for o in Operation),
        ) from None
    if operation.modality is Modality.VOICE:
        require_voice()
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
        raise InvalidRequest(
            "Attach at least one image, video or audio file as `source` or `target`."
        )
    if len(uploads) > MAX_MEDIA_ITEMS:
        raise InvalidRequest("At most %(num)d media items per job.", num=MAX_MEDIA_ITEMS)
    for u in uploads:
        if u.role not in {r.value for r in Role}:
            raise InvalidRequest(
                "Media role must be source or target, not %(role)s.", role=repr(u.role)
            )
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
class _PersonSeen:
    position: int
    role: Role
    box: tuple[int, ...]  # a face's (top, right, bottom, left); a voice's (first heard, speech) ms
    subject_id: int | None
    ambiguous: bool
    # What the person looks (or sounds) like: kept, sealed, for a consent request if needed.
    embedding: np.ndarray | None = None


@dataclass
class _Analysis:
    people: list[_PersonSeen] = field(default_factory=list)
    problems: dict[int, tuple[str, str]] = field(default_factory=dict)  # position → (code, message)


def _faces_in(data: bytes, matching: FaceMatching) -> list[FaceTrack]:
    """Every distinct person in one media item: each face of an image, each person of a video
    (their faces across the sampled frames grouped into one track)."""
    kind = sniff(data)
    if kind is MediaKind.VIDEO:
        from consent_service.media.video import sample_frames  # PyAV: workers only

        return track_faces(
            sample_frames(data, matching.video),
            matching.embedder,
            matching.same_person_tolerance,
            matching.track_votes,
        )
    if kind in (MediaKind.AUDIO, MediaKind.PLAYLIST):
        if kind is MediaKind.AUDIO:
            raise MediaRejected(
                "The file is an audio file; a face operation needs an image or a video file."
            )
        raise MediaRejected(
            "The file is a playlist; a face operation needs an image or a video file."
        )
    return [
        FaceTrack(face.box, [face.embedding], 1)
        for face in matching.embedder.detect(decode_image(data, matching.max_pixels))
    ]


def _people_in(
    data: bytes, gallery: Gallery, faces: FaceMatching, voices: VoiceMatching | None
) -> list[tuple[tuple[int, ...], Match, np.ndarray]]:
    """Each distinct person in one media item — faces (image or video) without `voices`,
    speakers with it — with where they are, whom they match and their (most typical)
    embedding."""
    if voices is not None:
        return [
            (
                (round(sp.first_heard * 1000), round(sp.seconds * 1000)),
                identify(gallery, sp.embedding, voices.tolerance, voices.margin),
                sp.embedding,
            )
            for sp in speakers_in(data, voices)
        ]
    return [
        (
            track.box,
            identify_track(gallery, track.embeddings, faces.tolerance, faces.margin),
            track.embeddings[0],
        )
        for track in _faces_in(data, faces)
    ]


_NOBODY = {
    Modality.FACE: ("no_face_found", "No face was found in this media."),
    Modality.VOICE: ("no_voice_found", "No speech was heard in this media."),
}


def _analyse(
    session: Session,
    items: list[MediaItem],
    store: MediaStore,
    matching: FaceMatching,
    operation: Operation = Operation.FACE_SWAP,
    voices: VoiceMatching | None = None,
) -> _Analysis:
    """Find and identify every person in the job's media; note media that cannot be used."""
    modality = operation.modality
    if modality is Modality.VOICE and voices is None:
        raise RuntimeError("a voice operation needs the worker's voice matching")
    gallery = (voices.gallery if modality is Modality.VOICE else matching.gallery).current(
        session, modality
    )
    result = _Analysis()
    for item in items:
        try:
            if item.storage_key is None:
                raise KeyError(item.position)
            people = _people_in(
                store.get(item.storage_key),
                gallery,
                matching,
                voices if modality is Modality.VOICE else None,
            )
        except KeyError:
            result.problems[item.position] = ("rejected_input", "The media is no longer stored.")
            continue
        except MediaRejected as exc:
            result.problems[item.position] = ("rejected_input", str(exc))
            continue
        if not people:
            result.problems[item.position] = _NOBODY[modality]
        for box, m, embedding in people:
            result.people.append(
                _PersonSeen(
                    item.position, Role(item.role), box, m.subject_id, m.ambiguous, embedding
                )
            )
    return result


def process_job(
    engine: Engine,
    job_id: str,
    store: MediaStore,
    matching: FaceMatching,
    audit_key: bytes,
    max_attempts: int,
    voice_matching: VoiceMatching | None = None,
    *,
    signer: DecisionSigner,
    pseudonym_key: bytes,
    envelope: Envelope | None = None,
    finding_face_ttl: timedelta = timedelta(days=7),
) -> str:
    """The worker's task body: safe to run any number of times, concurrently; decides once.
    With `envelope`, the people a `needs_consent` decision could not name are kept sealed for
    `finding_face_ttl`, so that a consent request can be opened for them."""
    with unit_of_work(engine) as s:
        job = s.get(GateJob, job_id)
        if job is None or job.status in (JobStatus.DECIDED.value, JobStatus.FAILED.value):
            return job.status if job else "missing"
        job.attempts += 1  # counted and committed before any decoding
        job.status = JobStatus.PROCESSING.value
        job.updated_at = utcnow()
        attempts, operation = job.attempts, Operation(job.operation)
        suspended = _provider_suspended(s, job)
    if suspended:  # queued before an operator suspended the provider: nothing is decided
        return _fail(engine, job_id, store, audit_key, PROVIDER_SUSPENDED)
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
        analysis = _analyse(s, items, store, matching, operation, voice_matching)
    try:
        status = _record_decision(
            engine, job_id, analysis, audit_key, signer, pseudonym_key, envelope, finding_face_ttl
        )
    except IntegrityError:  # a concurrent delivery recorded the decision first
        return JobStatus.DECIDED.value
    _destroy_media(engine, job_id, store, audit_key)
    return status


def _record_decision(
    engine: Engine,
    job_id: str,
    analysis: _Analysis,
    audit_key: bytes,
    signer: DecisionSigner,
    pseudonym_key: bytes,
    envelope: Envelope | None = None,
    finding_face_ttl: timedelta = timedelta(days=7),
) -> str:
    with unit_of_work(engine) as s:
        job = s.exec(select(GateJob).where(GateJob.id == job_id).with_for_update()).one()
        if job.status in (JobStatus.DECIDED.value, JobStatus.FAILED.value):
            return job.status
        if _provider_suspended(s, job):  # suspended while the media was being matched
            return _mark_failed(s, job, audit_key, PROVIDER_SUSPENDED)
        operation = Operation(job.operation)
        now = utcnow()
        # Grants are read here, in the transaction that records the decision, so a revocation
        # committed while the faces were being matched is honoured.
        outcomes, findings, subjects = _judge(s, job, analysis.people, now, revision=1)
        kind, reasons = policy.decide_job(outcomes, [c for c, _ in analysis.problems.values()])
        items = list(
            s.exec(select(MediaItem).where(MediaItem.job_id == job_id).order_by(MediaItem.position))
        )
        for item in items:
            if item.position in analysis.problems:
                item.rejected = analysis.problems[item.position][1]
        # Signed here, so the token says exactly what this transaction records.
        claims = _token_claims(job, kind.value, reasons, items, findings, subjects, pseudonym_key)
        claims["revision"] = 1
        token, jti = signer.sign(claims, now)
        s.add(
            Decision(
                job_id=job_id,
                decision=kind.value,
                reasons=reasons,
                created_at=now,
                token=token,
                jti=jti,
            )
        )
        s.flush()  # the decision's primary key is the job id: a second decision fails here
        s.add(
            DecisionRevision(
                job_id=job_id,
                revision=1,
                decision=kind.value,
                reasons=reasons,
                token=token,
                jti=jti,
                cause="media",
                created_at=now,
            )
        )
        if kind is DecisionKind.NEEDS_CONSENT and envelope is not None:
            for person, finding in zip(analysis.people, findings, strict=True):
                if person.embedding is not None and finding.outcome in (
                    Outcome.UNENROLLED.value,
                    Outcome.AMBIGUOUS.value,
                ):
                    keep_finding_face(
                        s,
                        envelope,
                        finding,
                        operation.modality,
                        person.embedding,
                        now + finding_face_ttl,
                    )
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
                "token_jti": jti,
            },
        )
        webhooks.job_decided(s, job, kind.value, reasons)  # outbox row, sent after the commit
        return job.status


def _judge(
    session: Session, job: GateJob, people: list[_PersonSeen], now: datetime, revision: int
) -> tuple[list[Outcome], list[Finding], dict[int, Subject]]:
    """Each person's outcome and finding row, from the grants as they are in this transaction
    (so a revocation committed while the media were being matched is honoured)."""
    operation = Operation(job.operation)
    matched = {p.subject_id for p in people if p.subject_id is not None}
    subjects = {
        sub.id: sub
        for sub in session.exec(select(Subject).where(Subject.id.in_(matched)))  # type: ignore[union-attr]
    }
    grants = current_grants(session, matched)
    outcomes: list[Outcome] = []
    findings: list[Finding] = []
    for person in people:
        verdict = _verdict(person, subjects, grants, operation, job.provider_id, now)
        outcomes.append(verdict.outcome)
        findings.append(
            Finding(
                job_id=job.id,
                media_position=person.position,
                role=person.role.value,
                outcome=verdict.outcome.value,
                subject_id=person.subject_id if verdict.outcome is not Outcome.UNENROLLED else None,
                grant_id=verdict.grant.grant_id if verdict.grant else None,
                grant_version=verdict.grant.version if verdict.grant else None,
                box=list(person.box),
                revision=revision,
            )
        )
    session.add_all(findings)
    return outcomes, findings, subjects


def _verdict(
    face: _PersonSeen,
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


def _provider_suspended(s: Session, job: GateJob) -> bool:
    provider = s.get(Provider, job.provider_id)
    return provider is None or provider.status == "suspended"


def _fail(engine: Engine, job_id: str, store: MediaStore, audit_key: bytes, reason: str) -> str:
    with unit_of_work(engine) as s:
        job = s.exec(select(GateJob).where(GateJob.id == job_id).with_for_update()).one()
        if job.status in (JobStatus.DECIDED.value, JobStatus.FAILED.value):
            return job.status
        _mark_failed(s, job, audit_key, reason)
    _destroy_media(engine, job_id, store, audit_key)
    return JobStatus.FAILED.value


def _mark_failed(s: Session, job: GateJob, audit_key: bytes, reason: str) -> str:
    """End the job without a decision, in the caller's transaction (it holds the job's lock)."""
    job.status, job.error, job.updated_at = JobStatus.FAILED.value, reason, utcnow()
    s.add(job)
    audit.append(
        s,
        audit_key,
        "gate.failed",
        f"provider:{job.provider_id}",
        {"job_id": job.id, "reason": reason},
    )
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


def _token_claims(
    job: GateJob,
    decision: str,
    reasons: list[str],
    items: list[MediaItem],
    findings: list[Finding],
    subjects: dict[int, Subject],
    pseudonym_key: bytes,
) -> dict:
    """The decision token's claims: the job as `job_view` shows it, minus boxes and file names."""
    return decision_claims(
        job_id=job.id,
        provider_id=job.provider_id,
        operation=job.operation,
        decision=decision,
        reasons=reasons,
        media=[{"position": i.position, "role": i.role, "sha256": i.sha256} for i in items],
        findings=[
            {
                "media": f.media_position,
                "role": f.role,
                "outcome": f.outcome,
                "subject_ref": (
                    subject_reference(
                        pseudonym_key, job.provider_id, subjects[f.subject_id].public_id
                    )
                    if f.subject_id in subjects
                    else None
                ),
                "grant_id": f.grant_id,
                "grant_version": f.grant_version,
            }
            for f in findings
        ],
    )


def aigc_label(provider_name: str, job_id: str, jti: str) -> dict:
    """GB 45438-2025's implicit label for the output of an allowed edit, to embed in its metadata
    under `AIGC`: generated content (Label 1), by this provider, traceable to this job and, by
    `ReservedCode1`, to the decision token. The distributing platform fills the Propagate fields."""
    return {
        "AIGC": {
            "Label": "1",
            "ContentProducer": provider_name,
            "ProduceID": job_id,
            "ReservedCode1": jti,
        }
    }


def job_view(session: Session, job: GateJob, pseudonym_key: bytes) -> dict:
    """What a provider may see of its job: decision, reasons, findings; never biometrics."""
    decision = session.get(Decision, job.id)
    items = list(
        session.exec(
            select(MediaItem).where(MediaItem.job_id == job.id).order_by(MediaItem.position)
        )
    )
    findings = list(
        session.exec(
            select(Finding)
            .where(
                Finding.job_id == job.id, Finding.revision == (decision.revision if decision else 1)
            )
            .order_by(Finding.id)
        )
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
        "token": decision.token if decision else None,
        "label": (
            aigc_label(session.get(Provider, job.provider_id).name, job.id, decision.jti)
            if decision and decision.jti and decision.decision == "allow"
            else None
        ),
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


def redecide(
    session: Session,
    job_id: str,
    identified: dict[int, int],
    audit_key: bytes,
    signer: DecisionSigner,
    pseudonym_key: bytes,
    cause: str,
) -> Decision | None:
    """Decide a `needs_consent` job again, in the caller's transaction, once a person it could
    not name is known (`identified`: finding id → subject id, e.g. from an approved consent
    request). The media are gone, so the people are those of the latest revision's findings;
    every grant is re-read now. Writes the next revision (findings, decision, token, audit
    entry, `job.decided`); returns the updated decision, or None when the job's latest
    decision is not `needs_consent` (nothing to revise). UNIQUE (job_id, revision) makes a
    concurrent second revision fail instead of being written twice."""
    job = session.exec(select(GateJob).where(GateJob.id == job_id).with_for_update()).one()
    decision = session.get(Decision, job_id)
    if decision is None or decision.decision != DecisionKind.NEEDS_CONSENT.value:
        return None
    previous = list(
        session.exec(
            select(Finding)
            .where(Finding.job_id == job_id, Finding.revision == decision.revision)
            .order_by(Finding.id)
        )
    )
    people = [
        _PersonSeen(
            f.media_position,
            Role(f.role),
            tuple(f.box),
            identified.get(f.id, f.subject_id),  # type: ignore[arg-type]
            f.outcome == Outcome.AMBIGUOUS.value and f.id not in identified,
        )
        for f in previous
    ]
    now, revision = utcnow(), decision.revision + 1
    outcomes, findings, subjects = _judge(session, job, people, now, revision)
    kind, reasons = policy.decide_job(outcomes, [])
    items = list(
        session.exec(
            select(MediaItem).where(MediaItem.job_id == job_id).order_by(MediaItem.position)
        )
    )
    claims = _token_claims(job, kind.value, reasons, items, findings, subjects, pseudonym_key)
    claims["revision"] = revision
    token, jti = signer.sign(claims, now)
    session.add(
        DecisionRevision(
            job_id=job_id,
            revision=revision,
            decision=kind.value,
            reasons=reasons,
            token=token,
            jti=jti,
            cause=cause[:200],
            created_at=now,
        )
    )
    session.flush()  # UNIQUE (job_id, revision): a concurrent revision fails here
    decision.decision, decision.reasons, decision.revision = kind.value, reasons, revision
    decision.token, decision.jti, decision.created_at = token, jti, now
    job.updated_at = now
    audit.append(
        session,
        audit_key,
        "gate.decided",
        f"provider:{job.provider_id}",
        {
            "job_id": job_id,
            "revision": revision,
            "cause": cause,
            "operation": job.operation,
            "decision": kind.value,
            "reasons": reasons,
            "findings": [o.value for o in outcomes],
            "token_jti": jti,
        },
    )
    webhooks.job_decided(session, job, kind.value, reasons)
    session.flush()
    return decision
