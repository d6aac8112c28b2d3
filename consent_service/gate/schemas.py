"""The gate's API shapes: what a provider sends to submit a job and what it reads back.

The same models validate requests, build responses and generate the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from werkzeug.datastructures import FileStorage

from consent_service.gate.service import MAX_MEDIA_ITEMS, Upload
from consent_service.vocabulary import (
    Assurance,
    DecisionKind,
    JobStatus,
    Operation,
    Outcome,
    Reason,
    Role,
)

UploadedFile = Annotated[
    FileStorage, WithJsonSchema({"type": "string", "format": "binary"}, mode="validation")
]


class JobSubmission(BaseModel):
    """The multipart form of `POST /api/v1/jobs`: the operation, then each file as a field named
    by its role. Other file fields are refused."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    operation: Operation = Field(description="The planned edit.")
    # How many files a job may have (1 to MAX_MEDIA_ITEMS in all) is the job's own rule, checked
    # once, by `service.submit_job`.
    source: list[UploadedFile] = Field(
        default_factory=list,
        description=f"Images whose likeness is taken (at most {MAX_MEDIA_ITEMS} files in all).",
    )
    target: list[UploadedFile] = Field(
        default_factory=list,
        description=f"Images of the content being edited (at most {MAX_MEDIA_ITEMS} files in all).",
    )

    @classmethod
    def from_request(cls, form, files) -> JobSubmission:
        """Validate a request's form and files (raises pydantic's ValidationError)."""
        data: dict[str, Any] = {name: files.getlist(name) for name in files}
        data["operation"] = form.get("operation")
        return cls.model_validate(data)

    def uploads(self) -> list[Upload]:
        return [
            Upload(role=role, filename=f.filename or "", data=f.read())
            for role in Role
            for f in getattr(self, role.value)
        ]


class MediaPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: int
    role: Role
    filename: str
    sha256: str
    error: str | None = Field(description="Why the item could not be used, if it could not.")


class FindingPublic(BaseModel):
    """One person found in the media. Never an embedding, a distance or a name."""

    model_config = ConfigDict(extra="forbid")

    media: int = Field(description="Position of the media item the person was found in.")
    role: Role
    outcome: Outcome
    subject_ref: str | None = Field(
        description="Pseudonymous: stable for one provider, unlinkable across providers."
    )
    box: list[int] | None = Field(
        default=None,
        description="Where the person is: a face's top, right, bottom, left (pixels); a "
        "voice's first heard and speech heard (milliseconds).",
    )
    assurance: Assurance | None = Field(
        default=None,
        description="How the named person's enrolled face and voice were shown to be their "
        "account's own, when the decision was made: `uploaded` < `live` < `reviewed`. None "
        "when nobody was named.",
    )


class JobPublic(BaseModel):
    """What a provider may see of its job (built by `gate.public.job_view`)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    status: JobStatus
    operation: Operation
    created_at: datetime
    attempts: int
    error: str | None
    decision: DecisionKind | None
    reasons: list[Reason] = Field(description="Reason codes of the decision.")
    assurance_required: Assurance | None = Field(
        default=None,
        description="The least assurance this provider required for the operation when the "
        "decision was made (None: any). A person below it is `assurance_too_low`.",
    )
    media: list[MediaPublic]
    findings: list[FindingPublic]
    token: str | None = Field(default=None, description="The signed decision (a JWS), if any.")
    label: dict[str, Any] | None = Field(
        default=None, description="What to embed in the output's metadata, if any."
    )


class AssuranceMinimums(BaseModel):
    """A provider's minimum assurance per operation: the body of `PUT` and the answer of both
    `GET` and `PUT /api/v1/assurance-minimums`."""

    model_config = ConfigDict(extra="forbid")

    minimums: dict[Operation, Assurance] = Field(
        description="The least assurance (`uploaded` < `live` < `reviewed`) each operation "
        "requires of every person found in a job; an operation left out requires none. A "
        "`PUT` replaces the whole set. Below it the gate answers `needs_consent` with the "
        "reason `assurance_too_low`."
    )
