"""The webhook API's shapes: what a provider sends to configure its webhook and what it reads
back (the same models validate, answer and document the API). The service builds the answers
(`service.webhook_view`, `service.delivery_view`); they refuse any field they do not declare."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from consent_service.api_contract.schemas import Page
from consent_service.vocabulary import DeliveryStatus, WebhookEvent


class WebhookUpdate(BaseModel):
    """The body of `PUT /api/v1/webhook`."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000, description="http(s) URL the events are POSTed to.")
    events: list[WebhookEvent] | None = Field(
        default=None, min_length=1, description="The events wanted; all when omitted."
    )
    active: bool = True
    rotate_secret: bool = Field(
        default=False, description="Issue a new signing secret (answered once)."
    )


class WebhookPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    events: list[WebhookEvent]
    active: bool
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(
        default=None,
        description="The signing secret: only when new (first configuration or rotation).",
    )


class DeliveryPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    event: WebhookEvent
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="Only while the delivery is pending.")
    delivered_at: datetime | None
    created_at: datetime
    job_id: str | None


class DeliveryList(Page):
    model_config = ConfigDict(extra="forbid")

    deliveries: list[DeliveryPublic] = Field(description="Newest first.")
