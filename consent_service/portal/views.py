"""The provider portal's pages (/portal): usage, API keys, webhook and deliveries, the minimum
assurance per operation, jobs, consent requests. Staff
sign in through /login; each page shows the staff member's own provider only. Thin: every
action is a service call."""

from __future__ import annotations

from datetime import timedelta
from functools import wraps

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from consent_service import db
from consent_service.consent_requests import service as requests_service
from consent_service.errors import Conflict, DomainError, InvalidRequest, NotFound
from consent_service.gate.public import job_view
from consent_service.portal import service
from consent_service.portal.forms import (
    SCOPE_HELP,
    AssuranceForm,
    JobFilterForm,
    NewKeyForm,
    RevokeKeyForm,
    RotateKeyForm,
    WebhookForm,
)
from consent_service.providers import service as providers
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from consent_service.web import add_home_page
from consent_service.webhooks import service as webhooks

bp = Blueprint("portal", __name__, url_prefix="/portal")


def _portal_home(user) -> str | None:
    """Provider staff land in their portal after signing in, not on a personal dashboard."""
    return url_for("portal.overview") if service.staff_of(db.session(), user) else None


bp.record_once(lambda state: add_home_page(state.app, _portal_home))


@bp.app_context_processor
def _portal_link() -> dict:
    """Every page's header links staff to their portal (`is_staff`)."""

    def is_staff() -> bool:
        return bool(current_user.is_authenticated and service.staff_of(db.session(), current_user))

    return {"is_staff": is_staff}


def staff_required(*, admin: bool = False):
    """Signed in, staff of a provider (`g.staff`), and an admin for actions that change things."""

    def decorate(view):
        @wraps(view)
        @login_required
        def wrapper(*args, **kwargs):
            staff = service.staff_of(db.session(), current_user)
            if staff is None:
                abort(403, "This account is not staff of any provider.")
            if not current_user.has_totp:
                flash(_("Provider staff sign in with a second factor: set it up now."))
                return redirect(url_for("accounts.two_factor", next=request.path))
            if admin and not staff.is_admin:
                abort(403, "Only the provider's admins can do this.")
            g.staff = staff
            return view(*args, **kwargs)

        return wrapper

    return decorate


def _no_store(body, status: int = 200):
    """A page that shows a secret once: never cached, never kept in history."""
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
@staff_required()
def overview():
    days = service.usage(db.session(), g.staff.provider)
    return render_template(
        "portal/overview.html",
        days=days,
        columns=service.USAGE_COLUMNS,
        totals={c: sum(d.counts[c] for d in days) for c in service.USAGE_COLUMNS},
    )


# ---------------------------------------------------------------------------- API keys
def _rotate_form() -> RotateKeyForm:
    return RotateKeyForm().offer(services().settings.api_key_rotation_overlap_hours)


def _keys_page(
    form: NewKeyForm,
    status: int = 200,
    new_key: str | None = None,
    rotated: providers.Rotation | None = None,
    rotate_form: RotateKeyForm | None = None,
):
    body = render_template(
        "portal/keys.html",
        keys=service.list_keys(db.session(), g.staff.provider),
        form=form,
        revoke_form=RevokeKeyForm(),
        rotate_form=rotate_form or _rotate_form(),
        scope_help=SCOPE_HELP,
        new_key=new_key,
        rotated=rotated,
    )
    return _no_store(body, status)


@bp.get("/keys")
@staff_required()
def keys():
    return _keys_page(NewKeyForm())


@bp.post("/keys")
@staff_required(admin=True)
def create_key():
    form = NewKeyForm()
    if not form.validate_on_submit():
        return _keys_page(form, 400)
    session = db.session()
    days = form.expires_in_days.data
    raw = service.create_key(
        session,
        services().audit_key,
        g.staff,
        form.name.data,
        form.chosen_scopes(),
        utcnow() + timedelta(days=days) if days else None,
    )
    # Rendered here, not redirected to: the key never travels through the session cookie.
    return _keys_page(NewKeyForm(formdata=None), 201, new_key=raw)


@bp.post("/keys/<prefix>/rotate")
@staff_required(admin=True)
def rotate_key(prefix: str):
    form = _rotate_form()
    if not form.validate_on_submit():
        abort(400, _("The form expired or its overlap is not one offered; reload the page."))
    session = db.session()
    try:
        with db.savepoint(session):
            rotation = service.rotate_key(
                session, services().audit_key, g.staff, prefix, timedelta(hours=form.overlap.data)
            )
    except Conflict as exc:
        flash(exc.localized(), "error")
        return redirect(url_for("portal.keys"))
    return _keys_page(NewKeyForm(formdata=None), 201, new_key=rotation.raw, rotated=rotation)


@bp.post("/keys/<prefix>/revoke")
@staff_required(admin=True)
def revoke_key(prefix: str):
    if not RevokeKeyForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    session = db.session()
    service.revoke_key(session, services().audit_key, g.staff, prefix)
    flash(f"Key {prefix}… is revoked: requests made with it are refused from now on.")
    return redirect(url_for("portal.keys"))


# ---------------------------------------------------------------------------- webhook
def _current_webhook():
    try:
        return webhooks.get_webhook(db.session(), g.staff.provider)
    except NotFound:
        return None


@bp.route("/webhook", methods=["GET", "POST"])
@staff_required()
def webhook():
    current = _current_webhook()
    if request.method == "GET":
        form = WebhookForm(
            formdata=None,
            url=current.url if current else "",
            events=current.events if current else list(webhooks.EVENTS),
            active=current.active if current else True,
        )
        return _webhook_page(form, current)
    if not g.staff.is_admin:
        abort(403, "Only the provider's admins can do this.")
    form = WebhookForm()
    if not form.validate_on_submit():
        return _webhook_page(form, current, status=400)
    svc = services()
    session = db.session()
    try:
        hook, secret = webhooks.configure(
            session,
            svc.envelope,
            g.staff.provider,
            form.url.data,
            events=form.events.data,
            active=form.active.data,
            rotate_secret=form.rotate_secret.data,
            allow_private=not svc.settings.is_production,
        )
    except DomainError as exc:
        flash(exc.localized(), "error")
        return _webhook_page(form, current, status=400)
    service.webhook_changed(session, svc.audit_key, g.staff, hook.url, secret is not None)
    if secret is None:
        flash("Webhook saved.")
        return redirect(url_for("portal.webhook"))
    form.rotate_secret.data = False
    return _webhook_page(form, hook, secret=secret)


def _webhook_page(form, current, status: int = 200, secret: str | None = None):
    body = render_template(
        "portal/webhook.html",
        form=form,
        webhook=current,
        secret=secret,
        deliveries=[
            webhooks.delivery_view(d)
            for d in webhooks.list_deliveries(db.session(), g.staff.provider, 50)
        ],
    )
    return _no_store(body, status)


@bp.get("/webhook/deliveries/<delivery_id>")
@staff_required()
def delivery(delivery_id: str):
    d = webhooks.get_delivery(db.session(), g.staff.provider, delivery_id)
    return render_template("portal/delivery.html", d=webhooks.delivery_view(d), body=d.body)


# ---------------------------------------------------------------------------- assurance
@bp.route("/assurance", methods=["GET", "POST"])
@staff_required()
def assurance():
    session = db.session()
    current = providers.assurance_minimums(session, g.staff.provider.id)
    if request.method == "GET":
        form = AssuranceForm(formdata=None, data={o.value: a.value for o, a in current.items()})
        return render_template("portal/assurance.html", form=form)
    if not g.staff.is_admin:
        abort(403, "Only the provider's admins can do this.")
    form = AssuranceForm()
    if not form.validate_on_submit():
        return render_template("portal/assurance.html", form=form), 400
    service.set_assurance_minimums(session, services().audit_key, g.staff, form.minimums())
    flash(_("Minimum assurance saved: decisions from now on apply it."))
    return redirect(url_for("portal.assurance"))


# ---------------------------------------------------------------------------- jobs
@bp.get("/jobs")
@staff_required()
def jobs():
    form = JobFilterForm(request.args)
    page = request.args.get("page", "1")
    status = 200
    try:
        if not form.validate():
            raise InvalidRequest(
                "Check the filters: %(problems)s", problems="; ".join(_errors(form))
            )
        filters = service.JobFilter(
            status=form.status.data or None,
            decision=form.decision.data or None,
            operation=form.operation.data or None,
            created_from=form.created_from.data,
            created_to=form.created_to.data,
        )
        result = service.list_jobs(
            db.session(), g.staff.provider, filters, int(page) if page.isdigit() else 1
        )
    except DomainError as exc:
        flash(exc.localized(), "error")
        result, status = None, 400
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("portal/jobs.html", form=form, result=result, args=args), status


def _errors(form) -> list[str]:
    return [f"{form[name].label.text}: {msgs[0]}" for name, msgs in form.errors.items()]


@bp.get("/jobs/<job_id>")
@staff_required()
def job(job_id: str):
    view = job_view(db.session(), g.staff.provider.id, job_id, services().pseudonyms)
    return render_template("portal/job.html", job=view)


# ---------------------------------------------------------------------------- consent requests
@bp.get("/requests")
@staff_required()
def consent_requests():
    rows = requests_service.list_for_provider(db.session(), g.staff.provider)
    return render_template("portal/requests.html", rows=rows)
