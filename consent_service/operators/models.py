"""The worker heartbeat the operators' health page reads."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel

from consent_service.timeutil import utcnow


class WorkerHeartbeat(SQLModel, table=True):
    """One row per worker host name, written by the `health.heartbeat` beat task."""

    __tablename__ = "worker_heartbeat"

    worker: str = Field(primary_key=True, max_length=200)
    beat_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
