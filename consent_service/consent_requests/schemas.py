"""The consent-request API shapes (they validate requests, build responses and make the
OpenAPI document)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from consent_service.vocabulary import ConsentRequestStatus, Modality, Operation, Role


class ConsentRequestCreate(BaseModel):
    """Ask for a job's `needs_consent` finding (`job_id` + `finding` index or `subject_ref`),
    or ask someone by `email`. A finding nobody is enrolled for needs the `email` to send the
    link to."""

    model_config = ConfigDict(extra="forbid")

    job_id: str | None = Field(default=None, min_length=1, max_length=32)
    finding: int | None = Field(
        default=None, ge=0, le=1000, description="Index of the finding in the job's `findings`."
    )
    subject_ref: str | None = Field(default=None, min_length=1, max_length=64)
    email: str | None = Field(default=None, min_length=3, max_length=320)
    operation: Operation | None = Field(
        default=None, description="The edit asked for; the job's operation by default."
    )
    roles: list[Role] = Field(
        default_factory=list, max_length=2, description="The finding's role by default."
    )
    purpose: str = Field(default="", max_length=1000, description="Why, shown to the person.")
    message: str = Field(default="", max_length=2000)
    valid_until: AwareDatetime | None = Field(
        default=None, description="End of the consent asked for (none: until revoked)."
    )


class ConsentRequestPublic(BaseModel):
    """What a provider sees of its request (built by `service.provider_view`)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    status: ConsentRequestStatus
    job_id: str | None
    email: str | None = Field(description="The address the provider gave, if any.")
    operation: Operation
    roles: list[Role]
    purpose: str
    message: str
    valid_until: datetime | None
    expires_at: datetime
    created_at: datetime
    answered_at: datetime | None
    grant_id: str | None = Field(description="The grant an approval created.")


class RequestShown(BaseModel):
    """A request as the person asked sees it (their inbox and the request's page; built by
    `service.request_shown`): who asks, for what, until when, and its status."""

    model_config = ConfigDict(extra="forbid")

    id: str
    provider: str = Field(description="The provider's name.")
    operation: Operation
    roles: list[Role]
    purpose: str
    message: str
    until: str | None = Field(description="The consent's end date (ISO), if any.")
    expires: str = Field(description="When the request expires (ISO, to the minute, UTC).")
    status: ConsentRequestStatus
    from_face: bool = Field(description="Asked for a face or voice found in the job.")
    modality: Modality
