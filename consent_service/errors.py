"""Named domain errors; views map them to HTTP once (problem+json for the API, a UI page).

Each class is one kind of problem: its `status`, its `title` (a few human words, the same for
every error of the kind: the problem's `title`) and its `code` (the class name unless set: the
problem's `code`, what programs compare). Every kind is listed in README.md's problem table
(tests/unit/test_errors.py checks both).

An error carries a message id with `%(name)s` placeholders and its parameters: `str(error)` is
the English sentence (the API, the CLI and the logs), `error.localized()` the same sentence in
the current request's language. pybabel extracts the first argument of each error class (see
"Languages" in README.md), and `N_` marks parameters that are themselves messages."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from flask_babel import get_locale, gettext


class Msgid(str):
    """A parameter that is itself a message: shown translated along with its error."""

    __slots__ = ()


def N_(message: str) -> Msgid:
    """Mark `message` for extraction (pybabel `-k N_`) without translating it yet."""
    return Msgid(message)


class Named:
    """A parameter that is a name the catalogue does not hold, given in each language (an
    operator's purpose label): English in the stored text, Chinese for a Chinese reader."""

    __slots__ = ("english", "chinese")

    def __init__(self, english: str, chinese: str):
        self.english, self.chinese = english, chinese or english

    def __str__(self) -> str:
        return self.english

    def localized(self) -> str:
        return self.chinese if str(get_locale() or "").startswith("zh") else self.english


class DomainError(Exception):
    """Base class: `str(error)` is a sentence a person can act on, in English;
    `error.localized()` says it in the reader's language."""

    status = 400
    title: ClassVar[str] = "Bad request"
    code: ClassVar[str] = "DomainError"
    # Answer headers (e.g. Retry-After on 429, WWW-Authenticate on 401) and extra members of
    # the problem body (e.g. the scope a key lacks); none by default.
    headers: Mapping[str, str] = MappingProxyType({})
    problem_fields: Mapping[str, Any] = MappingProxyType({})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:  # a subclass is a kind of its own unless it says not
            cls.code = cls.__name__

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
        if isinstance(value, DomainError | Named):
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
    title = "Media rejected"


class EnrollmentRejected(DomainError):
    status = 422
    title = "Enrollment rejected"


class ChallengeRefused(EnrollmentRejected):
    """A live session that cannot be answered. `reason`: `unknown` (never issued,
    voided by a newer one, or another person's), `used` or `expired`."""

    title = "Live session refused"

    def __init__(self, reason: str, message: str, **params: Any):
        super().__init__(message, **params)
        self.reason = reason
        self.status = 404 if reason == "unknown" else 422


class RecordingTooLarge(EnrollmentRejected):
    status = 413
    title = "Recording too large"


class InvalidRequest(DomainError):
    status = 422
    title = "Invalid request"


class UnsupportedMediaType(DomainError):
    """A body of another media type than the operation takes (JSON sent to a multipart
    operation, a form to a JSON one): 415, naming the type and the fields it takes."""

    status = 415
    title = "Unsupported media type"

    def __init__(self, message: str, accept: str, post: bool = False, **params: Any):
        super().__init__(message, **params)
        # RFC 9110 15.5.16: say what would have been accepted (Accept-Post for a POST).
        self.headers = {"Accept-Post": accept} if post else {}
        self.problem_fields = {"accepted_media_type": accept}


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class AccountExists(Conflict):
    title = "Account already exists"


class EmailNotVerified(DomainError):
    """The account has not proved it holds its e-mail address: it may not enroll, grant, answer
    consent requests or hold a role until it opens the verification link."""

    status = 403
    title = "E-mail address not verified"


class TokenInvalid(DomainError):
    """A decision token that does not verify; the message says why."""

    status = 422
    title = "Invalid decision token"


class Unauthenticated(DomainError):
    """No valid API key: one answer for missing, unknown, revoked and malformed keys."""

    status = 401
    title = "API key required"
    code = "Unauthorized"
    headers = MappingProxyType({"WWW-Authenticate": 'Bearer realm="consent-service"'})


class ApiKeyExpired(DomainError):
    """A provider API key past its `expires_at` (its rotation's overlap ended, or the expiry it
    was issued with): 401, saying so, unlike an unknown key."""

    status = 401
    title = "API key expired"
    headers = MappingProxyType(
        {
            "WWW-Authenticate": 'Bearer realm="consent-service", error="invalid_token", '
            'error_description="The API key expired"'
        }
    )


class ScopeMissing(DomainError):
    """A key without the scope the operation needs: 403, naming both in the problem (RFC 6750's
    insufficient_scope in WWW-Authenticate, for programs)."""

    status = 403
    title = "Scope missing"

    def __init__(self, required: str, allowed: list[str]):
        super().__init__(
            "This API key is not allowed %(scope)s, the scope this operation needs. Use a key "
            "with that scope, or have a provider admin create one in the portal.",
            scope=required,
        )
        self.problem_fields = {"required_scope": required, "key_scopes": allowed}
        self.headers = {
            "WWW-Authenticate": f'Bearer realm="consent-service", error="insufficient_scope", '
            f'scope="{required}"'
        }


class ServiceUnavailable(DomainError):
    """The request was saved but its processing could not be started (the queue is down)."""

    status = 503
    title = "Service unavailable"
