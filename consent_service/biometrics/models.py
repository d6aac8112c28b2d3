"""Biometric templates (encrypted embeddings), the enrollments that make them, and the disputes
that hold an enrollment matching another account's templates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, LargeBinary
from sqlmodel import Field, SQLModel

from consent_service.timeutil import new_id, utcnow


class BiometricTemplate(SQLModel, table=True):
    __tablename__ = "biometric_template"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    subject_id: int = Field(foreign_key="subject.id", index=True)
    modality: str = Field(max_length=16, index=True)
    model: str = Field(max_length=64)
    # AES-256-GCM envelope: `ciphertext` under a per-row data key, itself wrapped by the KEK.
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    enrollment_id: str | None = Field(default=None, foreign_key="enrollment.id")
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class Enrollment(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    subject_id: int = Field(foreign_key="subject.id", index=True)
    modality: str = Field(max_length=16)
    status: str = Field(default="pending", max_length=16)
    # Why it failed or waits, in English; and as {"message": msgid, "params": {...}} for pages
    # in the reader's language (see `errors.stored_message`); None on rows from before.
    error: str | None = None
    error_params: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Storage keys of the raw media; emptied once they are destroyed.
    media_keys: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    template_count: int = 0
    attempts: int = 0
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # When its task was last sent (at creation, then by the stale-work sweep), and when a worker
    # last claimed it (a claimed enrollment is running: the sweep leaves it alone for as long
    # as a worker may take). None on rows from before the columns.
    published_at: datetime | None = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    claimed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class GalleryVersion(SQLModel, table=True):
    """Bumped on every template change, so workers know when their in-memory gallery is stale."""

    __tablename__ = "gallery_version"

    modality: str = Field(primary_key=True, max_length=16)
    version: int = 0


class EnrollmentDispute(SQLModel, table=True):
    """A new enrollment whose face or voice matches another account's templates. The new vectors
    wait here, encrypted and outside the gallery, until an operator decides."""

    __tablename__ = "enrollment_dispute"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    enrollment_id: str = Field(foreign_key="enrollment.id", unique=True)
    modality: str = Field(max_length=16)
    model: str = Field(max_length=64)
    claimant_subject_id: int = Field(foreign_key="subject.id", index=True)  # the new account
    holder_subject_id: int = Field(foreign_key="subject.id", index=True)  # already enrolled
    # `open` | `awarded_claimant` | `kept_holder` | `rejected_both`
    status: str = Field(default="open", max_length=24, index=True)
    vector_count: int = 0
    # The claimant's vectors (float64 rows) under one AES-256-GCM envelope; emptied on resolution.
    ciphertext: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))
    wrapped_key: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))
    resolved_by: str | None = Field(default=None, max_length=200)
    note: str = Field(default="", max_length=2000)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    resolved_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
