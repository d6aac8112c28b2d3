"""The gate's API shapes: what a provider sends to submit a job and what it reads back, and what
anyone reads of a decision token: its verification and whether its decision still stands.

The same models validate requests, build responses and generate the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from werkzeug.datastructures import FileStorage

from consent_service.gate.service import MAX_MEDIA_ITEMS, Upload
from consent_service.tokens.service import MAX_TOKEN_LENGTH
from consent_service.vocabulary import (
    Assurance,
    DecisionKind,
    DecisionStanding,
    GrantStatus,
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
    purpose: str | None = Field(
        default=None,
        max_length=64,
        description="What the edit is for: a code of the purpose vocabulary in force (`GET "
        "/api/v1/purposes`); an unknown or retired code is a 422. Optional, but a job without "
        "one is covered only by grants that cover every purpose.",
    )
    purpose_detail: str | None = Field(
        default=None,
        max_length=1000,
        description="The purpose in your own words, beside the code (shown to the person).",
    )
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
        for name in ("purpose", "purpose_detail"):  # an empty field is one left out
            if form.get(name):
                data[name] = form.get(name)
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
    uncovered_purpose: str | None = Field(
        default=None,
        description="With outcome `not_covered`: the job's purpose, when it alone kept the "
        "person's grants from covering the job. None otherwise.",
    )


class JobPublic(BaseModel):
    """What a provider may see of its job (built by `gate.public.job_view`)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    status: JobStatus
    operation: Operation
    purpose: str | None = Field(default=None, description="The purpose code the job stated.")
    purpose_detail: str | None = Field(
        default=None, description="The purpose in the provider's words, as submitted."
    )
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


# ---------------------------------------------------------------------------- a decision's status
class SupersedingDecision(BaseModel):
    """The revision of the job's decision that replaced the one asked about."""

    model_config = ConfigDict(extra="forbid")

    revision: int
    decision: DecisionKind
    jti: str | None = Field(description="The id of the token that signs it.")
    issued_at: datetime


class DecisionStatus(BaseModel):
    """Whether a signed decision still stands, and nothing about who it concerns: no job,
    provider, person or grant ids (built by `gate.status.status_view`)."""

    model_config = ConfigDict(extra="forbid")

    jti: str | None = Field(description="The id of the token asked about.")
    revision: int = Field(description="The revision of the job's decision that token signs.")
    decision: DecisionKind = Field(description="What that token decided.")
    issued_at: datetime
    status: DecisionStanding = Field(
        description="valid: the decision stands. superseded: a later revision of the job's "
        "decision replaced it (see superseded_by). consent_withdrawn: a grant this `allow` "
        "relied on was revoked. consent_expired: the period of a grant it relied on ended."
    )
    since: datetime | None = Field(
        description="When the decision stopped standing (the later revision, the withdrawal, "
        "the end of the period); null while it stands."
    )
    superseded_by: SupersedingDecision | None = Field(
        description="The revision that replaced it, when superseded."
    )
    checked_at: datetime = Field(description="When this answer was read from the records.")


class GrantStanding(BaseModel):
    """A grant a decision relied on, as it is now (only in the verify answer: the token names
    its grants already)."""

    model_config = ConfigDict(extra="forbid")

    grant_id: str
    version: int = Field(description="The version the decision relied on (the token's).")
    current_version: int
    status: GrantStatus = Field(
        description="Now: active, revoked, refused or expired (a period that has ended counts "
        "as expired at once)."
    )
    since: datetime | None = Field(description="When it stopped being in force; null if active.")


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(
        min_length=1, max_length=MAX_TOKEN_LENGTH, description="A decision token (compact JWS)."
    )
    audience: str | None = Field(
        default=None,
        max_length=64,
        description="If given, the provider id the token must have been issued to (`aud`).",
    )
    accept_expired: bool = Field(
        default=False,
        description="Check a token past its `exp` too (signature, issuer, audience) and answer "
        "with `expired: true` and its status, instead of refusing it: to rely on a decision "
        "longer than its token lives.",
    )


class VerifyResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valid: Literal[True] = Field(
        description="The signature, algorithm, key, issuer and audience check, and the token "
        "has not expired unless `accept_expired` was asked."
    )
    expired: bool = Field(description="The token is past its `exp`.")
    kid: str = Field(description="The key that signed the token.")
    claims: dict[str, Any] = Field(
        description="iss, aud (provider id), sub (job id), iat, exp, jti, revision, decision, "
        "reasons, operation, purpose (the job's purpose code, or null), assurance_required "
        "(the provider's minimum assurance for the operation, or null), media (sha256 per "
        "item), findings (pseudonymous subject_ref, grant id and version, and assurance level "
        "per person), audit_checkpoint."
    )
    status: DecisionStatus | None = Field(
        description="Whether the decision still stands; null when this service holds no record "
        "of the token's decision."
    )
    grants: list[GrantStanding] = Field(
        description="Each grant an `allow` relied on, as it is now (empty for other decisions)."
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
