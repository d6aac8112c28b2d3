"""The person's consent pages: the grant form with its notice, one-click revoke, protect-only
mode (the dashboard, ledger and receipts are in rights/views.py). Thin: every action is a
service call."""

from __future__ import annotations

from datetime import UTC, datetime, time

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlmodel import col, select
from wtforms import SelectChoice

from consent_service import db
from consent_service.accounts import step_up as step_ups
from consent_service.accounts.service import require_verified_subject, subject_of
from consent_service.consent import purposes, service
from consent_service.consent import step_up as grant_step_up
from consent_service.consent.forms import (
    DestroyOnWithdrawalForm,
    GrantForm,
    ProtectOnlyForm,
    RefusalForm,
    RevokeForm,
    operation_choices,
)
from consent_service.consent.notice import (
    NOTICE_VERSION,
    notice,
    notice_language,
    spoken_statement,
)
from consent_service.errors import DomainError
from consent_service.i18n import current_language
from consent_service.i18n.labels import OPERATIONS
from consent_service.providers.models import Provider
from consent_service.rows import row_id
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Modality, Operation, ProviderStatus, Role
from consent_service.web import acting_subject, guardian_evidence

bp = Blueprint("consent", __name__)


def _evidence(session, subject, language: str | None = None) -> service.Evidence:
    return service.Evidence(
        actor=f"user:{current_user.id}",
        # A guardian acting for a child under 14 is named in the evidence and the receipt.
        guardian=guardian_evidence(session, subject),
        # Replaced by the live step-up's method when a grant is carried out; a revocation is
        # the signed-in session's (revoking never needs a live check).
        identity_method="password-session",
        # The language of the notice actually shown (the grant form posts it back).
        language=notice_language(language or current_language()),
        ip=request.remote_addr,
        user_agent=request.user_agent.string,
    )


def _day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@bp.route("/grants/new", methods=["GET", "POST"])
@login_required
def new_grant():
    session = db.session()
    subject = acting_subject(session)
    form = GrantForm()
    try:
        modality = Modality(request.values.get("modality") or Modality.FACE.value)
    except ValueError:
        modality = Modality.FACE
    form.modality.data = modality.value
    form.operations.choices = operation_choices(modality)
    form.providers.choices = _provider_choices(session)
    shown = notice_language(current_language())
    form.purposes.choices = _purpose_choices(session, shown)
    if request.method == "GET":
        form.notice_version.data = NOTICE_VERSION
        form.notice_language.data = shown
        if not form.providers.choices:  # nobody to choose yet: "all" is the only grant possible
            form.provider_scope.data = "all"
    if form.validate_on_submit():
        start, until = form.valid_from.data, form.valid_until.data
        today = utcnow().date()
        # The page always shows the current notice; a form opened before it changed says so.
        if (form.notice_version.data or NOTICE_VERSION) != NOTICE_VERSION:
            form.notice_version.data = NOTICE_VERSION
            flash(
                _("The notice has changed since the page was opened; please read it again."),
                "error",
            )
        elif (form.notice_language.data or shown) != shown:
            # The language was switched in another tab: show the notice in this one first.
            form.notice_language.data = shown
            flash(_("Please read the notice in this language before you give consent."), "error")
        elif start is not None and start < today:
            flash(_("Consent cannot start in the past; choose today or a later date."), "error")
        else:
            req = service.GrantRequest(
                modality=modality,
                operations=[Operation(o) for o in form.operations.data],
                roles=[Role(r) for r in form.roles.data],
                all_providers=form.provider_scope.data == "all",
                provider_ids=list(form.providers.data or []),
                purpose=form.purpose.data or "",
                purposes=form.chosen_purposes(),
                valid_from=_day_start(start) if start and start > today else None,
                # An end date means the whole of that day, in UTC.
                valid_until=datetime.combine(until, time.max, tzinfo=UTC) if until else None,
            )
            try:
                # Granting proves the granter: the grant waits for a short live check of the
                # person acting (their own enrolled face, or voice for voice edits), then the
                # worker carries it out (consent/step_up.py). Revoking never needs one.
                action = _wait_for_step_up(
                    session, subject, req, _evidence(session, subject, shown)
                )
            except DomainError as exc:
                flash(exc.localized(), "error")
            else:
                return redirect(url_for("live_enrollment.step_up_page", step_up_id=action.id))
    status = 400 if request.method == "POST" else 200
    return render_template(
        "consent/grant.html",
        form=form,
        modality=modality.value,
        notice_version=NOTICE_VERSION,
        notice_language=shown,
        notice=notice(modality, services().settings.controller_name_in(shown), shown),
    ), status


def _provider_choices(session) -> list[SelectChoice]:
    return [
        SelectChoice(p.id, p.name)
        for p in session.exec(
            select(Provider)
            .where(Provider.status == ProviderStatus.ACTIVE.value)
            .order_by(Provider.name)
        )
    ]


def _purpose_choices(session, language: str) -> list[SelectChoice]:
    vocabulary = purposes.vocabulary(session)
    labels = purposes.labels(vocabulary, language)
    return [SelectChoice(p.code, labels[p.code]) for p in vocabulary]


def _wait_for_step_up(session, subject, req: service.GrantRequest, evidence: service.Evidence):
    """Check the request now (its errors belong on the form), then write it down as an action
    waiting for the account's live step-up check."""
    service.check(session, req)
    require_verified_subject(session, row_id(subject))
    own = subject_of(session, session.merge(current_user._get_current_object()))
    summary = _(
        "Give consent: %(what)s.", what=", ".join(str(OPERATIONS[op]) for op in req.operations)
    )
    chosen = select(Provider.name).where(col(Provider.id).in_(req.provider_ids))
    names = None if req.all_providers else list(session.exec(chosen))
    return step_ups.begin(
        session,
        user_id=current_user.id,
        subject_id=row_id(own),
        kind=grant_step_up.KIND,
        modality=req.operations[0].modality,
        payload=grant_step_up.payload(row_id(subject), req, evidence, summary),
        return_to=url_for("rights.dashboard"),
        ttl_seconds=services().settings.step_up_ttl,
        statement=spoken_statement(req.operations, req.operations[0].modality, names),
    )


@bp.route("/refusals/new", methods=["GET", "POST"])
@login_required
def new_refusal():
    """Refuse a provider: an explicit "no" that beats every consent to it. No live check (a
    refusal only denies; see `service.refuse`)."""
    session = db.session()
    form = RefusalForm()
    try:
        modality = Modality(request.values.get("modality") or Modality.FACE.value)
    except ValueError:
        modality = Modality.FACE
    form.modality.data = modality.value
    form.provider.choices = _provider_choices(session)
    form.operations.choices = operation_choices(modality)
    if form.validate_on_submit():
        subject = acting_subject(session)
        req = service.RefusalRequest(
            modality=modality,
            provider_ids=[form.provider.data],
            operations=[Operation(o) for o in form.operations.data or []],
        )
        try:
            with db.savepoint(session):
                service.refuse(
                    session,
                    services().audit_key,
                    row_id(subject),
                    req,
                    _evidence(session, subject),
                )
        except DomainError as exc:
            flash(exc.localized(), "error")
        else:
            flash(_("Refused: that provider's edits of you are denied, whatever else you grant."))
            return redirect(url_for("rights.dashboard"))
    status = 400 if request.method == "POST" else 200
    return render_template("consent/refuse.html", form=form, modality=modality.value), status


@bp.route("/grants/<grant_id>/revoke", methods=["POST"])
@login_required
def revoke(grant_id: str):
    session = db.session()
    if RevokeForm().validate_on_submit():
        subject = acting_subject(session)
        row = service.revoke(
            session, services().audit_key, row_id(subject), grant_id, _evidence(session, subject)
        )
        flash(
            _("Refusal withdrawn: your grants decide again.")
            if row.refusal
            else _("Consent revoked. Edits that relied on it are no longer allowed.")
        )
    else:
        flash(_("The form expired; please try again."), "error")
    return redirect(url_for("rights.dashboard"))


@bp.route("/protect-only", methods=["POST"])
@login_required
def protect_only():
    session = db.session()
    form = ProtectOnlyForm()
    if form.validate_on_submit() and form.on.data in ("0", "1"):
        subject = acting_subject(session)
        on = form.on.data == "1"
        service.set_protect_only(
            session, services().audit_key, subject, on, actor=f"user:{current_user.id}"
        )
        flash(
            _("Protect-only mode is on: every edit of you is denied, whatever your grants say.")
            if on
            else _("Protect-only mode is off: your grants decide again.")
        )
    else:
        flash(_("The form expired; please try again."), "error")
    return redirect(url_for("rights.dashboard"))


@bp.route("/destroy-on-withdrawal", methods=["POST"])
@login_required
def destroy_on_withdrawal():
    session = db.session()
    form = DestroyOnWithdrawalForm()
    if form.validate_on_submit() and form.on.data in ("0", "1"):
        on = form.on.data == "1"
        service.set_destroy_on_withdrawal(
            session,
            services().audit_key,
            acting_subject(session),
            on,
            actor=f"user:{current_user.id}",
        )
        flash(
            _("Your templates will be destroyed when your last grant is withdrawn.")
            if on
            else _("Your templates will be kept when your grants are withdrawn.")
        )
    else:
        flash(_("The form expired; please try again."), "error")
    return redirect(url_for("rights.dashboard"))
