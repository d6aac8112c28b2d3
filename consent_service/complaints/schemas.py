"""The complaints API's shapes: what the provider concerned reads and what it answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from consent_service.vocabulary import ComplaintKind, ComplaintOutcome, ComplaintStatus


class ComplaintAnswer(BaseModel):
    """The body of `POST /api/v1/complaints/<id>/answer`."""

    model_config = ConfigDict(extra="forbid")

    answer: str = Field(
        min_length=1,
        max_length=5000,
        description="What the provider found and did; shown to the operator. A later answer "
        "replaces it.",
    )
    content_removed: bool | None = Field(
        default=None, description="Whether the content complained about was taken down."
    )


class ComplaintForProvider(BaseModel):
    """A complaint as the provider concerned reads it: never the complainant's address, name
    or evidence."""

    model_config = ConfigDict(extra="forbid")

    id: str
    reference: str
    kind: ComplaintKind
    status: ComplaintStatus
    description: str
    location: str = Field(description="Where the complainant saw the content (URL or text).")
    job_id: str | None
    token_jti: str | None = Field(description="The decision token the complaint names.")
    question: str = Field(description="The operator's question, if any.")
    asked_at: datetime | None
    answer: str | None
    content_removed: bool | None
    answered_at: datetime | None
    outcome: ComplaintOutcome | None
    resolve_by: datetime = Field(description="When the service must have resolved it.")
    created_at: datetime
