"""Shapes every API operation shares: RFC 9457 problem details."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="Where the problem is: the field, then any index.")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem: `title` names the kind of error in a few words, `code` the same
    kind for programs to compare, `detail` says what happened and what to do."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str = Field(
        description="The kind of error in a few human words (e.g. `Scope missing`); the same "
        "for every problem of its kind."
    )
    code: str = Field(
        description="The kind of error for programs: a stable name (e.g. `ScopeMissing`, "
        "`InvalidRequest`, `NotFound`), listed in the README's problem table."
    )
    status: int = Field(ge=400, le=599)
    detail: str | None = None
    instance: str | None = None
    errors: list[ValidationIssue] | None = Field(
        default=None, description="Each invalid input, for validation errors (422)."
    )
