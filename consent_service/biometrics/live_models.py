"""The challenge a live enrollment answers, issued by the server and used once: a head-turn
sequence for a face, a phrase to read aloud for a voice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, String, Text
from sqlmodel import Field, SQLModel

from consent_service.timeutil import new_id, utcnow


class LiveChallenge(SQLModel, table=True):
    __tablename__ = "live_challenge"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    subject_id: int = Field(foreign_key="subject.id", index=True)
    modality: str = Field(
        default="face", sa_column=Column(String(8), nullable=False, server_default="face")
    )
    # Face: "front" first, then the turns asked ("left", "right") in the order the page asks
    # them. Voice: empty.
    steps: list[str] = Field(sa_column=Column(JSON, nullable=False))
    # Voice: the text the page asked the person to read, and its language (BCP 47, "en" or
    # "zh-CN"), kept with the enrollment it answered for review.
    phrase: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    language: str | None = Field(default=None, max_length=16)
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
