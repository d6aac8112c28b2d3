"""Named domain errors; views map them to HTTP once (problem+json for the API, a UI page)."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: `str(error)` is a sentence a person can act on."""

    status = 400


class MediaRejected(DomainError):
    """An upload that cannot be decoded or breaks a limit."""

    status = 422


class EnrollmentRejected(DomainError):
    status = 422


class InvalidRequest(DomainError):
    status = 422


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class AccountExists(Conflict):
    pass


class TokenInvalid(DomainError):
    """A decision token that does not verify; the message says why."""

    status = 422
