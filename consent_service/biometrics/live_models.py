"""The head-turn challenge a live face enrollment answers: issued by the server, used once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel

from consent_service.timeutil import new_id, utcnow


class LiveChallenge(SQLModel, table=True):
    __tablename__ = "live_challenge"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    subject_id: int = Field(foreign_key="subject.id", index=True)
    # "front" first, then the turns asked ("left", "right") in the order the page asks them.
    steps: list[str] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    # Set when the frames are uploaded: a challenge answers one enrollment only.
    used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    enrollment_id: str | None = Field(
        default=None, foreign_key="enrollment.id", unique=True, max_length=32
    )
