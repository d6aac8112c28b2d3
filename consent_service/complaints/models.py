"""A complaint: what the complainant said, what it names, the two clocks, the provider's answer
and the operator's resolution. One row, changed only by the service's transitions, each audited."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Text
from sqlmodel import Field, SQLModel

from consent_service.timeutil import new_id, utcnow
from consent_service.vocabulary import ComplaintStatus


def _ts():
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


def _maybe_ts():
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


def _text():
    return Field(default="", sa_column=Column(Text, nullable=False))


class Complaint(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    # What the complainant quotes (mails, status page, operator queue): `C-XXXX-XXXX`.
    reference: str = Field(max_length=16, unique=True, index=True)
    kind: str = Field(max_length=32)
    status: str = Field(default=ComplaintStatus.RECEIVED.value, max_length=20, index=True)
    description: str = _text()
    location: str = _text()  # where the content is: a URL or free text
    # The complainant: their address (mails) and the language they chose (an account they were
    # signed in with is named in the audit entry only: the complaint outlives the account).
    # SHA-256 of the secret in the mailed status link.
    name: str = Field(default="", max_length=200)
    email: str = Field(max_length=320)
    language: str = Field(max_length=16)
    link_hash: str = Field(max_length=64)
    # What it names, checked when filed: a job (plain id, no foreign key: jobs are purged on
    # their own schedule), the decision token's id, and the provider concerned.
    job_id: str | None = Field(default=None, max_length=32, index=True)
    token_jti: str | None = Field(default=None, max_length=32)
    provider_id: str | None = Field(default=None, foreign_key="provider.id", index=True)
    # The evidence file, sealed in the evidence store; the key is cleared when it is destroyed.
    evidence_key: str | None = Field(default=None, max_length=64)
    evidence_name: str = Field(default="", max_length=200)
    evidence_type: str = Field(default="", max_length=100)
    evidence_bytes: int = 0
    evidence_sha256: str = Field(default="", max_length=64)
    evidence_destroyed_at: datetime | None = _maybe_ts()
    # The two clocks, fixed when filed from the limits published then.
    created_at: datetime = _ts()
    ack_due_at: datetime = _ts()
    resolve_due_at: datetime = _ts()
    acknowledged_at: datetime | None = _maybe_ts()
    acknowledged_by: str | None = Field(default=None, max_length=200)
    # The provider: asked (when filed, or by an operator), and its latest answer.
    provider_asked_at: datetime | None = _maybe_ts()
    provider_question: str = _text()
    provider_answer: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    provider_content_removed: bool | None = None
    provider_answered_at: datetime | None = _maybe_ts()
    # The resolution.
    outcome: str | None = Field(default=None, max_length=16)
    resolution: str = _text()  # the message the complainant is told
    resolved_at: datetime | None = _maybe_ts()
    resolved_by: str | None = Field(default=None, max_length=200)
