"""Webhooks: where a provider wants to hear about events, and the outbox of deliveries to it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

from consent_service.timeutil import new_id, utcnow
from consent_service.vocabulary import DeliveryStatus


class Webhook(SQLModel, table=True):
    """One per provider. The signing secret is ours, shown once, and kept as an AES-256-GCM
    envelope (not a hash): every delivery must be signed with it again."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    provider_id: str = Field(foreign_key="provider.id", unique=True, max_length=32)
    url: str = Field(max_length=2000)
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = True
    secret_ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    secret_wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # The id of the template KEK that wrapped the data key (keyring purpose `template-kek`).
    secret_kek_id: str = Field(default="v0", max_length=64)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class WebhookDelivery(SQLModel, table=True):
    """One event for one provider: written in the transaction of the event itself (the outbox),
    sent after the commit, retried with backoff until delivered or given up (`failed`)."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_due", "status", "next_attempt_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    webhook_id: str = Field(foreign_key="webhook.id", index=True, max_length=32)
    provider_id: str = Field(foreign_key="provider.id", index=True, max_length=32)
    event: str = Field(max_length=64)
    # The job a `job.decided` delivery is about, so the task that decided it can send it.
    job_id: str | None = Field(default=None, index=True, max_length=32)
    # The exact bytes POSTed (and signed) on every attempt.
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default=DeliveryStatus.PENDING.value, max_length=16)
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    # When the next attempt is due; while an attempt runs, the end of its lease.
    next_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # While an attempt runs (claimed, not yet recorded): the end of its lease. The per-provider
    # cap counts the deliveries leased now.
    leased_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    delivered_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
