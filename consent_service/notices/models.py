"""The notice table: one message for one person, and the outbox that mails it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel

from consent_service.timeutil import utcnow


class SubjectNotice(SQLModel, table=True):
    """A message for one person, shown on their dashboard and mailed to their address after the
    commit that wrote it (an outbox: `mailed_at` stays empty until a send succeeds). Each reader
    gets it in their language from `message_key` and `params` (notices/service.py); `message`
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
