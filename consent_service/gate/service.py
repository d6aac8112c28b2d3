"""Gate jobs, the web's half: accept media for a planned edit, and find a provider's job.

The request's shape (operation, files by role, Idempotency-Key) is validated once, at the edge
(`gate.schemas`, `api_contract.idempotency`); the service keeps the job's own invariants (at
least one item, at most MAX_MEDIA_ITEMS, voice needs the `voice` extra)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlmodel import Session, col, select

from consent_service import db
from consent_service.biometrics.voice_service import require_voice
from consent_service.consent.purposes import require_active
from consent_service.errors import InvalidRequest, NotFound
from consent_service.gate.models import GATE_JOB_ID_LENGTH, Decision, GateJob, MediaItem
from consent_service.providers.models import ProviderRef
from consent_service.storage import MediaStore
from consent_service.vocabulary import Modality, Operation, Role

MAX_MEDIA_ITEMS = 10
PROCESS_JOB = "gate.process_job"  # the task that decides a job (consent_service.gate.tasks)


@dataclass(frozen=True)
class Upload:
    role: Role
    filename: str
    data: bytes


def submit_job(
    session: Session,
    store: MediaStore,
    provider: ProviderRef,
    operation: Operation,
    uploads: list[Upload],
    idempotency_key: str | None = None,
    purpose: str | None = None,
    purpose_detail: str | None = None,
) -> tuple[GateJob, bool]:
    """Record a queued job with its media and register its task, sent once the unit of work
    commits. Returns (job, created); a repeated idempotency key returns the first job.
    `purpose` must be a code in force in the operator's vocabulary (or None: no purpose)."""
    if idempotency_key is not None:
        existing = session.exec(
            select(GateJob).where(
                GateJob.provider_id == provider.id, GateJob.idempotency_key == idempotency_key
            )
        ).first()
        if existing is not None:
            return existing, False
    if operation.modality is Modality.VOICE:
        require_voice()
    if not uploads:
        raise InvalidRequest(
            "Attach at least one image, video or audio file as `source` or `target`."
        )
    if len(uploads) > MAX_MEDIA_ITEMS:
        raise InvalidRequest("At most %(num)d media items per job.", num=MAX_MEDIA_ITEMS)
    if purpose is not None:
        require_active(session, [purpose])
    job = GateJob(
        provider_id=provider.id,
        operation=operation.value,
        idempotency_key=idempotency_key,
        purpose=purpose,
        purpose_detail=(purpose_detail or "").strip()[:1000] or None,
    )
    session.add(job)
    session.flush()
    for position, u in enumerate(uploads):
        session.add(
            MediaItem(
                job_id=job.id,
                position=position,
                role=u.role.value,
                filename=(u.filename or "")[:300],
                size=len(u.data),
                sha256=hashlib.sha256(u.data).hexdigest(),
                storage_key=store.put(u.data),
            )
        )
    session.flush()
    db.publish(session, PROCESS_JOB, job.id)
    return job, True


def get_job(session: Session, provider: ProviderRef, job_id: str) -> GateJob:
    """A provider's own job; another provider's id is indistinguishable from a missing one."""
    return find_job(session, provider, job_id)[0]


def require_job_id(job_id: object) -> None:
    """A job id too long for the column (or not text) names no job: NotFound before any query."""
    if not isinstance(job_id, str) or len(job_id) > GATE_JOB_ID_LENGTH:
        raise NotFound("No such job.")


def find_job(
    session: Session, provider: ProviderRef, job_id: str
) -> tuple[GateJob, Decision | None]:
    """A provider's own job and its decision (None before it is decided), in one query (the
    label endpoint reads both; the poll reads its view through `gate.public.job_view`)."""
    require_job_id(job_id)
    row = session.exec(
        select(GateJob, Decision)
        .outerjoin(Decision, col(Decision.job_id) == GateJob.id)
        .where(GateJob.id == job_id, GateJob.provider_id == provider.id)
    ).first()
    if row is None:
        raise NotFound("No such job.")
    return row[0], row[1]
