"""Named domain errors; views map them to HTTP once (problem+json for the API, a UI page).

An error carries a message id with `%(name)s` placeholders and its parameters: `str(error)` is
the English sentence (the API, the CLI and the logs), `error.localized()` the same sentence in
the current request's language. pybabel extracts the first argument of each error class (see
"Languages" in README.md), and `N_` marks parameters that are themselves messages."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext


class Msgid(str):
    """A parameter that is itself a message: shown translated along with its error."""

    __slots__ = ()


def N_(message: str) -> Msgid:
    """Mark `message` for extraction (pybabel `-k N_`) without translating it yet."""
    return Msgid(message)


class DomainError(Exception):
    """Base class: `str(error)` is a sentence a person can act on, in English;
    `error.localized()` says it in the reader's language."""

    status = 400

    def __init__(self, message: str, **params: Any):
        super().__init__(message)
        self.message = message
        self.params = params

    def __str__(self) -> str:
        return _render(self.message, self.params, translate=False)

    def localized(self) -> str:
        """The sentence in the current locale (English outside a request, or when a translation
        is missing); parameters that are messages (`N_`, nested errors) are translated too."""
        return _render(self.message, self.params, translate=True)

    def to_json(self) -> dict[str, Any]:
        """The message id and parameters, for a row to show the error later in any language."""
        return {"message": self.message, "params": {k: _dump(v) for k, v in self.params.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DomainError:
        params = {k: _load(v) for k, v in (data.get("params") or {}).items()}
        return cls(str(data["message"]), **params)


def _dump(value: Any) -> Any:
    if isinstance(value, DomainError):
        return value.to_json()
    if isinstance(value, Msgid):
        return {"msgid": str(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _load(value: Any) -> Any:
    if isinstance(value, dict) and "msgid" in value:
        return Msgid(value["msgid"])
    if isinstance(value, dict) and "message" in value:
        return DomainError.from_json(value)
    return value


def _render(message: str, params: dict[str, Any], translate: bool) -> str:
    values = {}
    for name, value in params.items():
        if isinstance(value, DomainError):
            value = value.localized() if translate else str(value)
        elif isinstance(value, Msgid):
            value = gettext(value) if translate else str(value)
        values[name] = value
    text = gettext(message) if translate else message
    if not values:
        return text
    try:
        return text % values
    except (KeyError, TypeError, ValueError):  # a translation that does not fit: say it in English
        return message % values if translate else message


def stored_message(text: str | None, stored: dict[str, Any] | None) -> str | None:
    """An error kept on a row both as English `text` and as `stored` (`DomainError.to_json`),
    in the reader's language. Rows from before (no `stored`), or whose text was rewritten by
    code that keeps no parameters, show `text` as it is."""
    if not stored:
        return text
    try:
        error = DomainError.from_json(stored)
        if str(error) != text:
            return text
        return error.localized()
    except (KeyError, TypeError, ValueError):
        return text


class MediaRejected(DomainError):
    """An upload that cannot be decoded or breaks a limit."""

    status = 422


class EnrollmentRejected(DomainError):
    status = 422


class ChallengeRefused(EnrollmentRejected):
    """A live session that cannot be answered. `reason`: `unknown` (never issued,
    voided by a newer one, or another person's), `used` or `expired`."""

    def __init__(self, reason: str, message: str, **params: Any):
        super().__init__(message, **params)
        self.reason = reason
        self.status = 404 if reason == "unknown" else 422


class RecordingTooLarge(EnrollmentRejected):
    status = 413


class InvalidRequest(DomainError):
    status = 422


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class AccountExists(Conflict):
    pass


class EmailNotVerified(DomainError):
    """The account has not proved it holds its e-mail address: it may not enroll, grant, answer
    consent requests or hold a role until it opens the verification link."""

    status = 403


class TokenInvalid(DomainError):
    """A decision token that does not verify; the message says why."""

    status = 422


class ApiKeyExpired(DomainError):
    """A provider API key past its `expires_at` (its rotation's overlap ended, or the expiry it
    was issued with): 401, saying so, unlike an unknown key."""

    status = 401
