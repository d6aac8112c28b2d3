"""Sign up, sign in, sign out; export all own data; delete the account."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from consent_service import db
from consent_service.accounts import service
from consent_service.accounts.forms import DeleteAccountForm, SignInForm, SignUpForm
from consent_service.consent.receipts import Controller
from consent_service.consent.service import Evidence
from consent_service.errors import AccountExists, InvalidRequest
from consent_service.extensions import login_manager
from consent_service.guardians.views import acting_subject
from consent_service.i18n import current_language
from consent_service.rights import service as rights
from consent_service.runtime import services

bp = Blueprint("accounts", __name__)


@login_manager.user_loader
def _load_user(user_id: str):
    return service.load_user(db.session(), user_id)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("consent.dashboard")


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    form = SignUpForm()
    if form.validate_on_submit():
        session = db.session()
        try:
            user = service.sign_up(
                session,
                form.email.data,
                form.password.data,
                form.display_name.data or "",
                language=current_language(),  # the page's: what their mail will be in
            )
        except AccountExists:
            # Same answer as for a new address: no account enumeration through sign-up.
            flash(_("If this address can be used, you can now sign in with it."))
            return redirect(url_for("accounts.login"))
        except InvalidRequest as exc:
            flash(exc.localized(), "error")
        else:
            session.commit()
            login_user(user)
            flash(_("Welcome. Enroll your face so that edits of it can be checked."))
            return redirect(url_for("biometrics.enroll"))
    return render_template("accounts/signup.html", form=form), 400 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = SignInForm()
    if form.validate_on_submit():
        user = service.authenticate(db.session(), form.email.data, form.password.data)
        if user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        flash(_("Wrong e-mail address or password."), "error")
    return render_template("accounts/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    session = db.session()
    user = session.merge(current_user._get_current_object())
    service.end_all_sessions(user)  # a copied cookie is worthless after sign-out
    session.commit()
    logout_user()
    flash(_("You are signed out."))
    return redirect(url_for("accounts.login"))


@bp.route("/account/export.json")
@login_required
def export():
    session = db.session()
    user = session.merge(current_user._get_current_object())
    body = rights.export(
        session,
        user,
        Controller.from_settings(services().settings),
        request.url_root,
        subject=acting_subject(session),  # "me", or the child chosen in the selector
    )
    return Response(
        json.dumps(body, indent=2, ensure_ascii=False),
        mimetype="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="consent-service-export.json"',
            "Cache-Control": "no-store",
        },
    )


@bp.route("/account/delete", methods=["GET", "POST"])
@login_required
def delete():
    form = DeleteAccountForm()
    if form.validate_on_submit():
        session = db.session()
        user = session.merge(current_user._get_current_object())
        evidence = Evidence(
            actor=f"user:{user.id}",
            identity_method="password-confirmed",
            ip=request.remote_addr,
            user_agent=request.user_agent.string,
        )
        try:
            rights.delete_account(
                session,
                services().media_store,
                services().audit_key,
                user,
                form.password.data,
                evidence,
            )
        except InvalidRequest as exc:
            session.rollback()
            flash(exc.localized(), "error")  # a wrong password, in the page's language
        else:
            session.commit()
            logout_user()
            flash(
                _(
                    "Your account is deleted: your face and voice templates are destroyed and "
                    "your grants are revoked."
                )
            )
            return redirect(url_for("accounts.login"))
    status = 400 if request.method == "POST" else 200
    return render_template("accounts/delete.html", form=form), status
