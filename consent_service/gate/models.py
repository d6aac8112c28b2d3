"""Gate jobs: one check of one planned edit, its media, per-person findings, the decision and
its revisions, and the sealed faces of people a decision could not name."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from consent_service.timeutil import new_id, utcnow
from consent_service.vocabulary import JobStatus

GATE_JOB_ID_LENGTH = 32


class GateJob(SQLModel, table=True):
    __tablename__ = "gate_job"
    __table_args__ = (UniqueConstraint("provider_id", "idempotency_key"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=GATE_JOB_ID_LENGTH)
    provider_id: str = Field(foreign_key="provider.id", index=True)
    operation: str = Field(max_length=32)
    # What the edit is for: a code of the operator's purpose vocabulary (`consent.purposes`),
    # checked against the grants; None when the provider stated none (then only grants that
    # cover every purpose cover the job). `purpose_detail`: the provider's own words beside it.
    purpose: str | None = Field(default=None, max_length=64)
    purpose_detail: str | None = Field(default=None, max_length=1000)
    status: str = Field(default=JobStatus.QUEUED.value, max_length=16, index=True)
    idempotency_key: str | None = Field(default=None, max_length=200)
    attempts: int = 0
    error: str | None = None
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    # When its task was last sent (at submission, then by the stale-work sweep); None on rows
    # from before the column: the sweep reads their creation time.
    published_at: datetime | None = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # The task message that claimed it last, and until when no other message takes it over
    # (a duplicate delivery of a job being processed is not an attempt: `pipeline.claim`).
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class MediaItem(SQLModel, table=True):
    __tablename__ = "media_item"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="gate_job.id", index=True)
    position: int
    role: str = Field(max_length=16)
    filename: str = Field(default="", max_length=300)
    sha256: str = Field(max_length=64)
    size: int
    # Null once the media is destroyed after the decision.
    storage_key: str | None = Field(default=None, max_length=64)
    # Why the item could not be used, in words a person understands.
    rejected: str | None = None


class Decision(SQLModel, table=True):
    # One decision per job, enforced by the database: redelivery can never decide twice.
    job_id: str = Field(foreign_key="gate_job.id", primary_key=True, max_length=32)
    decision: str = Field(max_length=16)
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    # The signed decision (consent_service.tokens), written in the same transaction.
    token: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    jti: str | None = Field(default=None, max_length=32, unique=True, index=True)
    # The latest revision: a consent request answered later re-decides the job (revision 2, …);
    # every revision is kept in `decision_revision` (below).
    revision: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    # The provider's minimum assurance for the operation when the latest revision was made
    # (vocabulary.Assurance; None: the provider asked for none).
    assurance_required: str | None = Field(default=None, max_length=16)


class Finding(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="gate_job.id", index=True)
    media_position: int
    role: str = Field(max_length=16)
    outcome: str = Field(max_length=32)
    subject_id: int | None = Field(default=None, foreign_key="subject.id", index=True)
    # Indexed: revoking a grant looks up the allowed jobs that relied on it.
    grant_id: str | None = Field(default=None, max_length=32, index=True)
    grant_version: int | None = None
    # Where the face is in the image: top, right, bottom, left (pixels).
    box: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The decision revision this finding belongs to (the job shows the latest revision's).
    revision: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    # The matched subject's assurance level (vocabulary.Assurance) when the decision was made;
    # None for a person nobody was named for.
    assurance: str | None = Field(default=None, max_length=16)
    # Set when the job's purpose was all that kept a grant from covering the person (outcome
    # `not_covered`): the purpose code, so the person and the provider see why.
    uncovered_purpose: str | None = Field(default=None, max_length=64)


class FindingFace(SQLModel, table=True):
    """The embedding of a person a `needs_consent` decision could not name, kept (sealed) for a
    short while so that the provider can open a consent request for them after the job's media
    are deleted. Never shown to anyone; purged after CONSENT_REQUEST_FINDING_TTL."""

    __tablename__ = "finding_face"

    finding_id: int = Field(foreign_key="finding.id", primary_key=True)
    job_id: str = Field(foreign_key="gate_job.id", index=True, max_length=32)
    modality: str = Field(max_length=8)
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # The id of the template KEK that wrapped the data key (keyring purpose `template-kek`).
    kek_id: str = Field(default="v0", max_length=64)
    expires_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class DecisionRevision(SQLModel, table=True):
    """Every decision a job has had, in order; `decision` holds the latest. A job is decided
    once per revision: UNIQUE (job_id, revision)."""

    __tablename__ = "decision_revision"
    # The time index: the metrics read the decisions of their window (observability.metrics).
    __table_args__ = (
        UniqueConstraint("job_id", "revision"),
        Index("ix_decision_revision_created_at", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="gate_job.id", index=True, max_length=32)
    revision: int
    decision: str = Field(max_length=16)
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    token: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The token's id and the SHA-256 of the token (hex): the two ways its public status URL
    # names it (`gate.status`); a label carries one of them.
    jti: str | None = Field(default=None, max_length=32, unique=True, index=True)
    token_sha256: str | None = Field(default=None, max_length=64, unique=True, index=True)
    # What caused the revision (e.g. "consent request <id>").
    cause: str = Field(default="", max_length=200)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
