"""Provider staff: an account's membership in one provider, with a role."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel

from consent_service.timeutil import utcnow
from consent_service.vocabulary import StaffRole


class ProviderStaff(SQLModel, table=True):
    """One account works for at most one provider (`user_id` is unique), so every portal page
    has exactly one provider to show and nothing of any other."""

    __tablename__ = "provider_staff"

    id: int | None = Field(default=None, primary_key=True)
    provider_id: str = Field(foreign_key="provider.id", index=True, max_length=32)
    user_id: int = Field(foreign_key="user.id", unique=True)
    role: str = Field(default=StaffRole.VIEWER.value, max_length=16)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
