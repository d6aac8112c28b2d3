"""The language switch on every page: a POST with its CSRF token, remembered in a cookie and, for a
signed-in person, on the account (so it follows them to another browser)."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, request
from flask_login import current_user

from consent_service import db
from consent_service.i18n import COOKIE, LOCALES, locale_name
from consent_service.web import safe_next

bp = Blueprint("i18n", __name__)
ONE_YEAR = 365 * 24 * 3600


@bp.route("/language", methods=["POST"])
def switch():
    chosen = locale_name(request.form.get("lang"))
    if chosen is None:
        abort(400, "Unknown language.")
    tag = LOCALES[chosen]
    if current_user.is_authenticated:
        session = db.session()
        user = session.merge(current_user._get_current_object())
        user.language = tag
    response = redirect(safe_next(request.form.get("next")))  # same-site paths only
    response.set_cookie(COOKIE, tag, max_age=ONE_YEAR, httponly=True, samesite="Lax")
    return response
