"""The web session and the account itself (blueprint `accounts`): sign up, verify the address,
sign in (throttled; with a TOTP code when the account has one), sign out, change or reset the
password, two-factor set-up, invitations to a role; and Flask-Login's user loader.

Sign-up and the reset request answer the same (status, target, text and cookie) whether or not
the address has an account: what differs is the mail its owner gets. Every mail asked for is
counted per address and per client address first (`MailThrottle`): over either limit the page
answers 429 before the address is looked up."""

from __future__ import annotations

import time

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as web_session
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from consent_service import db
from consent_service.accounts import service, twofactor
from consent_service.accounts.forms import (
    ChangePasswordForm,
    CodeForm,
    ConfirmForm,
    DigestOffForm,
    EmailForm,
    NewPasswordForm,
    NoticeDigestForm,
    PasswordConfirmForm,
    SignInForm,
    SignUpForm,
)
from consent_service.accounts.models import User
from consent_service.api_contract.ratelimit import (
    MailThrottle,
    MailThrottled,
    SignInThrottle,
    SignInThrottled,
    Throttled,
)
from consent_service.errors import AccountExists, EmailNotVerified, InvalidRequest
from consent_service.extensions import csrf, login_manager
from consent_service.i18n import current_language
from consent_service.runtime import services
from consent_service.web import account_mail, home_page, safe_next

bp = Blueprint("accounts", __name__)
# The Flask-session key of a sign-in waiting for its second factor: (user id, next, started).
PENDING = "signin_pending"
PENDING_SECONDS = 300


@login_manager.user_loader
def _load_user(user_id: str):
    return service.load_user(db.session(), user_id)


def _secret() -> str:
    return current_app.config["SECRET_KEY"]


def _me() -> User:
    """The signed-in account, attached to this request's session."""
    return db.session().merge(current_user._get_current_object())


def _throttle() -> SignInThrottle:
    return current_app.extensions["signin_throttle"]


def _mail_throttle() -> MailThrottle:
    return current_app.extensions["mail_throttle"]


def _client() -> str:
    return request.remote_addr or "-"


def _throttled(template: str, form, exc: Throttled):
    """The form again, saying how long to wait: 429 with Retry-After."""
    flash(exc.localized(), "error")
    return render_template(template, form=form), exc.status, exc.headers


@bp.app_errorhandler(EmailNotVerified)
def _not_verified(exc: EmailNotVerified):
    """Whatever needed a verified address: say so, and offer the link again."""
    page = render_template(
        "accounts/verify_needed.html", message=exc.localized(), form=ConfirmForm()
    )
    return page, exc.status


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    form = SignUpForm()
    if form.validate_on_submit():
        session = db.session()
        try:
            _mail_throttle().hit(form.email.data, _client())
        except MailThrottled as exc:
            return _throttled("accounts/signup.html", form, exc)
        try:
            with db.savepoint(session):  # a refused sign-up keeps none of it
                user = service.sign_up(
                    session,
                    form.email.data,
                    form.password.data,
                    form.display_name.data or "",
                    language=current_language(),  # the page's: what their mail will be in
                )
        except AccountExists:
            # The owner hears of it by mail (with a way back in); the visitor sees what a new
            # address sees. The password typed here is never used.
            owner = service.find_user(session, form.email.data)
            if owner is not None and owner.is_active:
                account_mail.already_registered(
                    session, owner, service.reset_link(_secret(), owner)
                )
            return _check_your_mail(form.email.data)
        except InvalidRequest as exc:
            flash(exc.localized(), "error")
        else:
            account_mail.verification(session, user, service.verification_link(_secret(), user))
            return _check_your_mail(form.email.data)
    return render_template("accounts/signup.html", form=form), 400 if form.errors else 200


def _check_your_mail(email: str):
    flash(
        _(
            "We sent a mail to %(email)s. Open the link in it to go on; sign in when it asks.",
            email=service.normalize_email(email),
        )
    )
    return redirect(url_for("accounts.login"))


@bp.route("/verify/<token>")
@login_required
def verify(token: str):
    """Opened signed in: the account holding the password and the mailbox are one person's."""
    session = db.session()
    user = _me()
    try:
        with db.savepoint(session):
            service.verify_email(
                session, _secret(), user, token, services().settings.email_link_ttl
            )
    except InvalidRequest as exc:
        return render_template(
            "accounts/verify_needed.html", message=exc.localized(), form=ConfirmForm()
        ), 400
    flash(_("Your e-mail address is verified."))
    return redirect(url_for("biometrics.enroll"))


@bp.post("/verify/send")
@login_required
def send_verification():
    form = ConfirmForm()
    if form.validate_on_submit():
        user = _me()
        try:
            _mail_throttle().hit(user.email, _client())
        except MailThrottled as exc:
            flash(exc.localized(), "error")
            return redirect(url_for("rights.dashboard"))
        if not user.is_verified:
            link = service.verification_link(_secret(), user)
            account_mail.verification(db.session(), user, link)
        flash(_("We sent a new link to %(email)s.", email=user.email))
    return redirect(url_for("rights.dashboard"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = SignInForm()
    if form.validate_on_submit():
        try:
            _throttle().check(form.email.data, _client())
        except SignInThrottled as exc:
            return _throttled("accounts/login.html", form, exc)
        user = service.authenticate(db.session(), form.email.data, form.password.data)
        if user is None:
            _throttle().failed(form.email.data, _client())
            flash(_("Wrong e-mail address or password."), "error")
        elif user.has_totp:
            web_session[PENDING] = [user.get_id(), request.args.get("next"), time.time()]
            return redirect(url_for("accounts.second_factor"))
        else:
            return _signed_in(user, request.args.get("next"))
    return render_template("accounts/login.html", form=form)


def _signed_in(user: User, target: str | None):
    web_session.pop(PENDING, None)
    login_user(user)
    if user.is_operator and not user.has_totp:  # staff are sent by the portal itself
        flash(_("Operators sign in with a second factor: set it up now."))
        return redirect(url_for("accounts.two_factor", next=safe_next(target, home_page(user))))
    return redirect(safe_next(target, home_page(user)))


@bp.route("/login/code", methods=["GET", "POST"])
def second_factor():
    pending = web_session.get(PENDING)
    if not pending or time.time() - float(pending[2]) > PENDING_SECONDS:
        web_session.pop(PENDING, None)
        flash(_("Sign in again."), "error")
        return redirect(url_for("accounts.login"))
    session = db.session()
    user = service.load_user(session, pending[0])
    if user is None:
        web_session.pop(PENDING, None)
        return redirect(url_for("accounts.login"))
    form = CodeForm()
    if form.validate_on_submit():
        try:
            _throttle().check(user.email, _client())
        except SignInThrottled as exc:
            return _throttled("accounts/code.html", form, exc)
        if twofactor.verify(session, services().envelope, user, form.code.data):
            return _signed_in(user, pending[1])
        _throttle().failed(user.email, _client())
        flash(_("That code is not right."), "error")
    return render_template("accounts/code.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    service.end_all_sessions(_me())  # a copied cookie is worthless after sign-out
    logout_user()
    flash(_("You are signed out."))
    return redirect(url_for("accounts.login"))


# --- passwords -----------------------------------------------------------------------------


@bp.route("/reset", methods=["GET", "POST"])
def reset_request():
    form = EmailForm()
    if form.validate_on_submit():
        session = db.session()
        try:
            _mail_throttle().hit(form.email.data, _client())
        except MailThrottled as exc:
            return _throttled("accounts/reset_request.html", form, exc)
        try:
            user = service.find_user(session, form.email.data)
        except InvalidRequest as exc:  # not an address at all: says nothing about accounts
            flash(exc.localized(), "error")
            return render_template("accounts/reset_request.html", form=form), 400
        if user is not None and user.is_active and not user.email.endswith(".invalid"):
            account_mail.password_reset(session, user, service.reset_link(_secret(), user))
        return _check_your_mail(form.email.data)
    return render_template("accounts/reset_request.html", form=form), 400 if form.errors else 200


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str):
    session = db.session()
    ttl = services().settings.password_reset_ttl
    try:
        service.reset_target(session, _secret(), token, ttl)
    except InvalidRequest as exc:
        return render_template("error.html", status=400, message=exc.localized()), 400
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            with db.savepoint(session):
                service.reset_password(session, _secret(), token, ttl, form.password.data)
        except InvalidRequest as exc:
            flash(exc.localized(), "error")
            return render_template("accounts/reset.html", form=form), 400
        else:
            logout_user()  # whoever was signed in here signs in with the new password
            flash(_("Your new password is set; you are signed out everywhere. Sign in."))
            return redirect(url_for("accounts.login"))
    return render_template("accounts/reset.html", form=form), 400 if form.errors else 200


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        session = db.session()
        user = _me()
        try:
            with db.savepoint(session):
                service.change_password(session, user, form.current.data, form.password.data)
        except InvalidRequest as exc:
            flash(exc.localized(), "error")
            return _account_page(form), 400
        else:
            login_user(user)  # this browser goes on under the new token; every other one ends
            flash(_("Your password is changed; every other session is signed out."))
            return redirect(url_for("rights.dashboard"))
    return _account_page(form), 400 if form.errors else 200


def _account_page(form: ChangePasswordForm) -> str:
    on = _me().notice_digest
    digest_form = NoticeDigestForm(formdata=None, on="0" if on else "1")
    return render_template(
        "accounts/password.html", form=form, digest_form=digest_form, digest_on=on
    )


@bp.post("/account/digest")
@login_required
def notice_digest():
    form = NoticeDigestForm()
    if form.validate_on_submit() and form.on.data in ("0", "1"):
        on = form.on.data == "1"
        service.set_notice_digest(db.session(), _me(), on)
        flash(
            _("The daily mail about blocked attempts is on.")
            if on
            else _("The daily mail about blocked attempts is off; the notices stay on your page.")
        )
    else:
        flash(_("The form expired; please try again."), "error")
    return redirect(url_for("accounts.change_password"))


@bp.route("/account/digest/off/<token>", methods=["GET", "POST"])
@csrf.exempt  # the signed link authorises it; a mail client's one-click POST has no token
def digest_off(token: str):
    """The digest mail's unsubscribe link: GET asks (a mail scanner opening links must not
    unsubscribe anyone), POST, from that page or a mail client's one-click List-Unsubscribe,
    switches the digest off. No sign-in needed."""
    form = DigestOffForm()
    if request.method == "POST":
        session = db.session()
        try:
            with db.savepoint(session):
                service.digest_off(session, _secret(), token)
        except InvalidRequest as exc:
            return render_template("accounts/digest_off.html", form=form, error=exc), 400
        return render_template("accounts/digest_off.html", form=form, done=True)
    return render_template("accounts/digest_off.html", form=form)


# --- two-factor sign-in --------------------------------------------------------------------


@bp.route("/account/two-factor", methods=["GET", "POST"])
@login_required
def two_factor():
    session = db.session()
    envelope = services().envelope
    user = _me()
    if user.has_totp:
        left = len(user.recovery_codes or [])
        return render_template(
            "accounts/two_factor_on.html", left=left, form=PasswordConfirmForm(), codes=None
        )
    form = CodeForm()
    if form.validate_on_submit():
        try:
            with db.savepoint(session):
                codes = twofactor.confirm_setup(session, envelope, user, form.code.data)
                service.end_all_sessions(user)  # sessions from before the factor end
        except InvalidRequest as exc:
            flash(exc.localized(), "error")
        else:
            login_user(user)
            page = render_template(
                "accounts/two_factor_on.html",
                left=len(codes),
                codes=codes,
                form=PasswordConfirmForm(),
                next=safe_next(request.args.get("next")),
            )
            return page
    secret = twofactor.pending_secret(envelope, user) or twofactor.start_setup(
        session, envelope, user
    )
    return render_template(
        "accounts/two_factor_setup.html",
        form=form,
        secret=secret,
        uri=twofactor.provisioning_uri(secret, user),
    )


@bp.post("/account/two-factor/off")
@login_required
def two_factor_off():
    form = PasswordConfirmForm()
    user = _me()
    if form.validate_on_submit():
        if user.is_operator:  # provider staff are sent back to set it up by the portal
            flash(_("Operators keep two-factor sign-in on."), "error")
        elif not service.verify_password(user.password_hash, form.password.data):
            flash(_("Your current password is not right."), "error")
        else:
            twofactor.disable(db.session(), user)
            flash(_("Two-factor sign-in is off."))
    return redirect(url_for("accounts.two_factor"))


# --- invitations ---------------------------------------------------------------------------


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def invitation(token: str):
    session = db.session()
    ttl = services().settings.invitation_ttl
    try:
        invited = service.open_invitation(session, _secret(), token, ttl)
    except InvalidRequest as exc:
        return render_template("error.html", status=400, message=exc.localized()), 400
    user = session.get(User, invited.user_id)
    assert user is not None  # foreign key
    sets_password = invited.new_account and user.password_hash == service.NO_PASSWORD
    if not sets_password and not current_user.is_authenticated:
        return login_manager.unauthorized()
    form = NewPasswordForm() if sets_password else ConfirmForm()
    if form.validate_on_submit():
        me = user if sets_password else _me()
        try:
            with db.savepoint(session):
                service.accept_invitation(
                    session,
                    services().audit_key,
                    invited,
                    me,
                    form.password.data if sets_password else None,
                )
        except InvalidRequest as exc:  # EmailNotVerified: its own page, with "send again"
            flash(exc.localized(), "error")
            return _invitation_page(form, sets_password, invited.role), 400
        else:
            if sets_password:
                logout_user()
                flash(_("Your password is set and the invitation accepted. Sign in."))
                return redirect(url_for("accounts.login"))
            flash(_("Invitation accepted."))
            return redirect(url_for("rights.dashboard"))
    return _invitation_page(form, sets_password, invited.role), 400 if form.errors else 200


def _invitation_page(form, sets_password: bool, role: str) -> str:
    return render_template(
        "accounts/invitation.html", form=form, sets_password=sets_password, role=role
    )
