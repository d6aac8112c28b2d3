"""Consent requests: what a provider asks a person, and their answer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from consent_service.timeutil import new_id, utcnow
from consent_service.vocabulary import ConsentRequestStatus


def _ts():
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


def _maybe_ts():
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class ConsentRequest(SQLModel, table=True):
    __tablename__ = "consent_request"
    __table_args__ = (UniqueConstraint("provider_id", "idempotency_key"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    provider_id: str = Field(foreign_key="provider.id", index=True)
    status: str = Field(default=ConsentRequestStatus.PENDING.value, max_length=16, index=True)
    # Who is asked: an e-mail address, a matched subject, or a face found in a job (or several).
    email: str | None = Field(default=None, max_length=320, index=True)
    subject_id: int | None = Field(default=None, foreign_key="subject.id", index=True)
    job_id: str | None = Field(default=None, foreign_key="gate_job.id", index=True)
    finding_id: int | None = Field(default=None, foreign_key="finding.id")
    # What is asked for.
    operation: str = Field(max_length=32)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    purpose: str = Field(default="", sa_column=Column(Text, nullable=False))
    message: str = Field(default="", sa_column=Column(Text, nullable=False))
    valid_until: datetime | None = _maybe_ts()
    expires_at: datetime = _ts()
    idempotency_key: str | None = Field(default=None, max_length=200)
    # SHA-256 of the secret in the mailed link: whoever holds the link may open the request.
    link_hash: str = Field(max_length=64)
    # The face (or voice) found in the job, sealed like a template; wiped when the request ends.
    modality: str | None = Field(default=None, max_length=8)
    face_ciphertext: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    face_wrapped_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    # The id of the template KEK that wrapped the data key (keyring purpose `template-kek`).
    face_kek_id: str = Field(default="v0", max_length=64)
    # The answer.
    answered_by: int | None = Field(default=None, foreign_key="user.id")
    answered_at: datetime | None = _maybe_ts()
    grant_id: str | None = Field(default=None, max_length=32)
    created_at: datetime = _ts()
