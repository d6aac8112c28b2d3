"""The guardian relationship of a managed (child) subject: who declared it, as what, and when."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Date, DateTime
from sqlmodel import Field, SQLModel

from consent_service.timeutil import utcnow


class Guardianship(SQLModel, table=True):
    """One row per managed subject. The child's `Subject.user_id` is the guardian's account (the
    account that acts for it and hears about it); this row is what makes it a managed subject."""

    id: int | None = Field(default=None, primary_key=True)
    subject_id: int = Field(foreign_key="subject.id", unique=True)
    guardian_user_id: int = Field(foreign_key="user.id", index=True)
    relationship: str = Field(max_length=32)  # parent | legal_guardian
    date_of_birth: date = Field(sa_column=Column(Date, nullable=False))
    # The statement the guardian ticked, verbatim, as evidence of what they declared.
    declaration: str = Field(max_length=1000)
    declared_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    # Set when the child's subject is erased; the row stays as the record of who consented.
    ended_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
