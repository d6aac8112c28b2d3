"""Shapes every API operation shares: RFC 9457 problem details."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="Where the problem is: the field, then any index.")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem: `title` names the kind of error, `detail` says what to do."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int = Field(ge=400, le=599)
    detail: str | None = None
    instance: str | None = None
    errors: list[ValidationIssue] | None = Field(
        default=None, description="Each invalid input, for validation errors (422)."
    )
