"""Sign up, sign in, sign out (blueprint `accounts`), and Flask-Login's user loader."""

from __future__ import annotations

from flask import (
    Blueprint,
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
from consent_service.accounts.forms import SignInForm, SignUpForm
from consent_service.errors import AccountExists, InvalidRequest
from consent_service.extensions import login_manager
from consent_service.i18n import current_language
from consent_service.web import safe_next

bp = Blueprint("accounts", __name__)


@login_manager.user_loader
def _load_user(user_id: str):
    return service.load_user(db.session(), user_id)


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    form = SignUpForm()
    if form.validate_on_submit():
        session = db.session()
        try:
            with db.savepoint(session):  # a refused sign-up answers 200: keep none of it
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
            return redirect(safe_next(request.args.get("next")))
        flash(_("Wrong e-mail address or password."), "error")
    return render_template("accounts/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    session = db.session()
    user = session.merge(current_user._get_current_object())
    service.end_all_sessions(user)  # a copied cookie is worthless after sign-out
    logout_user()
    flash(_("You are signed out."))
    return redirect(url_for("accounts.login"))
