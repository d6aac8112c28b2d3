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


# Pagination, one way for every list: `limit` and an opaque `cursor` in, the items and
# `next_cursor` out (and a `Link: <...>; rel="next"` header). An operation answering a `Page`
# takes a `PageQuery` (`api_operation` refuses one without the other).
DEFAULT_PAGE = 50
MAX_PAGE = 100


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(
        default=DEFAULT_PAGE,
        ge=1,
        le=MAX_PAGE,
        description=f"How many items a page holds (1 to {MAX_PAGE}; {DEFAULT_PAGE} by default).",
    )
    cursor: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The `next_cursor` of the page before; left out for the first page.",
    )


class Page(BaseModel):
    """One page of a list: its items (under the list's own name), then where the next starts."""

    next_cursor: str | None = Field(
        description="Pass it as `cursor` for the next page; null on the last page. The answer's "
        '`Link` header (rel="next") carries the same as a URL.'
    )
