"""Domain errors to HTTP, once: problem+json under /api, a readable page elsewhere; the security
headers every response carries; and a form that cannot be read answered 400, saying why."""

from __future__ import annotations

from flask import Flask, Request, Response, jsonify, render_template, request
from flask_babel import gettext as _
from pydantic import ValidationError
from werkzeug.datastructures import FileStorage, ImmutableMultiDict
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.formparser import FormDataParser

from consent_service import db
from consent_service.api_contract.schemas import Problem, ValidationIssue
from consent_service.errors import DomainError, InvalidRequest, ServiceUnavailable

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'"
)


def problem(status: int, title: str, detail: str | None = None, *, code: str, **extra) -> Response:
    """An RFC 9457 problem+json response, shaped by the `Problem` model the OpenAPI shows:
    `title` in human words, `code` the kind's stable name for programs."""
    body = Problem(title=title, status=status, detail=detail or None, code=code, **extra)
    response = jsonify(body.model_dump(mode="json", exclude_none=True))
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def domain_problem(exc: DomainError) -> Response:
    """A domain error as problem+json: its kind's title and code, its sentence as `detail`,
    its extra members and headers (Retry-After, WWW-Authenticate, ...)."""
    response = problem(exc.status, exc.title, str(exc), code=exc.code, **exc.problem_fields)
    response.headers.update(exc.headers)
    return response


def http_title(exc: HTTPException) -> str:
    """An HTTP error's title in the same human words as ours: werkzeug's "Method Not Allowed"
    in sentence case, "Method not allowed" (acronyms such as URI kept)."""
    title = getattr(exc, "title", None) or exc.name
    words = [w if len(w) > 1 and w.isupper() else w.lower() for w in title.split(" ")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _invalid(exc: ValidationError) -> Response:
    issues = [
        ValidationIssue(loc=list(e["loc"]), msg=e["msg"], type=e["type"]) for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(map(str, i.loc)) or 'request'}: {i.msg}" for i in issues)
    return problem(422, InvalidRequest.title, detail, code=InvalidRequest.code, errors=issues)


class UnreadableForm(BadRequest):
    title = "Unreadable form"
    description = (
        "The form could not be read: its field names, values and file names must be UTF-8 "
        "text without NUL characters."
    )


class FormRequest(Request):
    """Flask's request, except that a form body that cannot be read is a 400 that says so.

    Werkzeug, left to itself, drops a whole form silently when a field name, a file name or an
    url-encoded body is not UTF-8 (the view then sees an empty form and answers something
    misleading, such as a missing CSRF token), replaces the bytes of a multipart value that are
    not with U+FFFD, and passes NUL characters on, which PostgreSQL refuses to store (a 500 after
    the view's work). So each of those is refused (a U+FFFD in a value is taken for such bytes).
    Percent-escapes that are not UTF-8 (`a=%FF`) stay as their escape text, werkzeug's choice:
    valid text, so they go on."""

    def make_form_data_parser(self) -> FormDataParser:
        parser = super().make_form_data_parser()
        parser.silent = False  # a form that cannot be decoded raises instead of vanishing
        return parser

    def _load_form_data(self) -> None:
        try:
            super()._load_form_data()
        except ValueError as exc:  # UnicodeDecodeError included
            self._forget_form()
            raise UnreadableForm() from exc
        if _unreadable(self.form) or _unreadable(self.files):
            self._forget_form()
            raise UnreadableForm()

    def _forget_form(self) -> None:
        # Error pages and after-request hooks may read the form again: they find it empty.
        for upload in self.__dict__.get("files", ImmutableMultiDict()).values():
            upload.close()
        self.__dict__["form"] = ImmutableMultiDict()
        self.__dict__["files"] = ImmutableMultiDict()


def _unreadable(fields) -> bool:
    for name, value in fields.items(multi=True):
        if name is None:  # a multipart part without a name: no field, nothing reads it
            continue
        text = (value.filename or "") if isinstance(value, FileStorage) else value
        if "\x00" in name or "\x00" in text or "\ufffd" in text:
            return True
    return False


def _page_message(exc: HTTPException) -> str:
    """Werkzeug's stock descriptions are English: pages say the same in the reader's language.
    A description written for the case is kept (those our views raise are translated there)."""
    if isinstance(exc, UnreadableForm):
        return _(
            "The form could not be read: its fields must be UTF-8 text without NUL characters. "
            "Go back and try again."
        )
    if exc.description != type(exc).description:
        return exc.description or ""
    messages = {
        400: _("The request could not be understood. Go back and try again."),
        403: _("You are not allowed to open this page."),
        404: _("This page does not exist, or it is not yours to see."),
        405: _("This page cannot be used that way."),
        413: _("The upload is too large."),
        429: _("Too many requests: wait a moment and try again."),
        500: _("Something went wrong on our side. Please try again later."),
    }
    return messages.get(exc.code or 500, exc.description or "")


def _wants_api() -> bool:
    return request.path.startswith("/api/")


QUEUE_UNREACHABLE = (
    "The request was saved, but its processing could not be started: the task queue is "
    "unreachable. It starts by itself once the queue is back (within a few minutes); do not "
    "send it again."
)


def _queue_unreachable(response: Response) -> Response:
    """A request that committed but could not publish its task (the broker is down): the API
    answers 503 problem+json, keeping the Location of what it saved (e.g. the job, which the
    stale-work sweep publishes later); a page keeps its answer (its work is saved the same)."""
    if not _wants_api():
        return response
    location = response.headers.get("Location")
    detail = QUEUE_UNREACHABLE + (f" Follow it at {location}." if location else "")
    unavailable = domain_problem(ServiceUnavailable(detail))
    if location:
        unavailable.headers["Location"] = location
    return unavailable


def init_app(app: Flask) -> None:
    app.request_class = FormRequest
    db.on_unsent(app, _queue_unreachable)

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        if _wants_api():
            return domain_problem(exc)
        # The API stays English (str); a page says it in the reader's language.
        page = render_template("error.html", status=exc.status, message=exc.localized())
        return page, exc.status

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        if _wants_api():
            return _invalid(exc)
        raise exc  # outside the API a ValidationError is a bug: let it be a 500

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if _wants_api():
            response = problem(
                exc.code or 500, http_title(exc), exc.description, code=type(exc).__name__
            )
            for name, value in exc.get_headers():  # keeps Allow on 405, drops Content-Type
                if name.lower() != "content-type":
                    response.headers[name] = value
            return response
        return render_template("error.html", status=exc.code, message=_page_message(exc)), exc.code

    @app.after_request
    def _headers(response: Response) -> Response:
        h = response.headers
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "same-origin")
        if app.config.get("SESSION_COOKIE_SECURE"):
            h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
