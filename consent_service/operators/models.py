"""Enrollment disputes, notices shown to people on their dashboard, and the worker heartbeat."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, LargeBinary
from sqlmodel import Field, SQLModel

from consent_service.timeutil import new_id, utcnow


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


class SubjectNotice(SQLModel, table=True):
    """A message for one person, shown on their dashboard and mailed to their address after the
    commit that wrote it (an outbox: `mailed_at` stays empty until a send succeeds). Each reader
    gets it in their language from `message_key` and `params` (operators/notices.py); `message`
    keeps the English text, and is what rows without a known key show."""

    __tablename__ = "subject_notice"

    id: int | None = Field(default=None, primary_key=True)
    subject_id: int = Field(foreign_key="subject.id", index=True)
    kind: str = Field(max_length=64)
    message: str = Field(max_length=2000)
    message_key: str | None = Field(default=None, max_length=64)
    params: dict = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    mailed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class WorkerHeartbeat(SQLModel, table=True):
    """One row per worker host name, written by the `health.heartbeat` beat task."""

    __tablename__ = "worker_heartbeat"

    worker: str = Field(primary_key=True, max_length=200)
    beat_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
