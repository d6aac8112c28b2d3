"""Web plumbing every capability's pages and API share: who is acting on this request (the
signed-in account's own subject or a child it manages), same-site `next` redirects, and the
provider's API-key authentication. Capabilities import this package, never each other's views.
The pages of the web session itself live here too: sign-in (`signin`) and the language switch
(`language`), so that `accounts` and `i18n` stay below it.

The selected subject lives in the Flask session and is checked against the signed-in account on
every request (`acting_subject`), so a stale or forged selection never reaches another family."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import abort, current_app, g, request, url_for
from flask import session as web_session
from flask_login import current_user
from sqlmodel import Session

from consent_service import db
from consent_service.accounts import service as accounts
from consent_service.accounts.models import Subject
from consent_service.api_contract import ratelimit
from consent_service.api_contract.operations import current_operation
from consent_service.errors import NotFound, ScopeMissing, Unauthenticated
from consent_service.providers.service import authenticate_key
from consent_service.vocabulary import Scope

# The Flask-session key of the subject chosen in the "me / child" selector.
SESSION_KEY = "acting_subject"


def acting_subject(session: Session) -> Subject:
    """The subject the signed-in account acts for on this request: 404 if not theirs."""
    selected = web_session.get(SESSION_KEY)
    try:
        return accounts.acting_subject(session, current_user, selected)
    except NotFound:
        web_session.pop(SESSION_KEY, None)
        abort(404)


def guardian_evidence(session: Session, subject: Subject) -> dict | None:
    return accounts.guardian_evidence(session, subject)


def safe_next(target: str | None, default: str | None = None) -> str:
    """Only same-site paths: never an open redirect (else `default`, else the dashboard)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return default or url_for("rights.dashboard")


# app.extensions key: callables (user -> URL or None) asked, in order, where an account lands
# after signing in. A capability above `web` (the provider portal) adds its own, so `web` never
# imports it.
HOME_PAGES = "consent_home_pages"


def add_home_page(app, home: Callable[[Any], str | None]) -> None:
    """Let `home` choose where some accounts land after signing in (first answer wins)."""
    app.extensions.setdefault(HOME_PAGES, []).append(home)


def home_page(user) -> str:
    """Where `user` lands after signing in without a `next`: a capability's page (provider
    staff: their portal) or the personal dashboard."""
    for home in current_app.extensions.get(HOME_PAGES, []):
        url = home(user)
        if url:
            return url
    return url_for("rights.dashboard")


def _api_key() -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("X-API-Key")


def _declared_scope() -> Scope:
    """The scope the endpoint's `api_operation` declares: the one source the OpenAPI document
    states too. An endpoint behind a key that declares none is a bug, refused loudly."""
    spec = current_operation()
    if spec is None or spec.scope is None:
        raise RuntimeError(f"{request.endpoint} needs an API key but declares no scope")
    return spec.scope


def require_provider(view):
    """An API view for providers: the key's provider in `g.provider` (a `ProviderIdentity`: its
    id and name), the key allowed the scope the view's `api_operation` names, rate limited per
    key."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        scope = _declared_scope()
        # An expired key raises ApiKeyExpired: a 401 saying so, unlike an unknown one.
        holder = authenticate_key(db.session(), _api_key())
        if holder is None:  # one answer for missing, unknown, revoked and malformed keys
            raise Unauthenticated("A valid API key is required.")
        ratelimit.enforce(_api_key())
        if not holder.allows(scope):
            # RFC 6750's insufficient_scope, with the scope named for people and programs.
            raise ScopeMissing(scope.value, sorted(s.value for s in holder.scopes))
        g.provider = holder.provider
        return view(*args, **kwargs)

    return wrapper
