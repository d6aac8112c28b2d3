"""The record of each key rotation: what a crashed re-wrap resumes from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel

from consent_service.timeutil import utcnow


class KeyRotation(SQLModel, table=True):
    """One rotation of one purpose's key: started, counted batch by batch (each batch commits
    with its count), finished once nothing is left under an older version."""

    __tablename__ = "key_rotation"

    id: int | None = Field(default=None, primary_key=True)
    purpose: str = Field(max_length=32, index=True)
    # The version the rotation moves to (the keyring's newest when it started).
    key_id: str = Field(max_length=64)
    started_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # Data keys re-wrapped under `key_id` so far (the template KEK's rotation).
    rows_done: int = 0
