"""The people's own pages over everything the service holds about them: the dashboard, the
activity ledger, consent receipts, the export of all own data, and the erasure of an account or
of a managed child. Above the capabilities they read (consent, biometrics, the gate's findings).
Thin: every action is a service call."""

from __future__ import annotations

import json

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as web_session
from flask_babel import gettext as _
from flask_login import current_user, login_required, logout_user

from consent_service import db
from consent_service.accounts import service as accounts
from consent_service.accounts.forms import DeleteAccountForm
from consent_service.biometrics.service import template_count
from consent_service.consent import purposes
from consent_service.consent import service as consent
from consent_service.consent.forms import DestroyOnWithdrawalForm, ProtectOnlyForm, RevokeForm
from consent_service.consent.receipts import Controller
from consent_service.consent.service import Evidence
from consent_service.errors import DomainError, InvalidRequest, NotFound
from consent_service.i18n import current_language
from consent_service.rights import service as rights
from consent_service.rows import row_id
from consent_service.runtime import services
from consent_service.vocabulary import Modality
from consent_service.web import SESSION_KEY, acting_subject

bp = Blueprint("rights", __name__)
LEDGER_PAGE = 100  # rows per page of the activity ledger


@bp.route("/")
@login_required
def dashboard() -> str:
    session = db.session()
    subject = acting_subject(session)
    subject_id = row_id(subject)
    versions: dict[str, list[int]] = {}
    for row in consent.grant_versions(session, subject_id):
        versions.setdefault(row.grant_id, []).append(row.version)
    return render_template(
        "consent/dashboard.html",
        subject=subject,
        grants=consent.current_grants(session, [subject_id]),
        versions=versions,
        providers=rights.provider_names(session),
        # Retired purposes too: grants keep naming them.
        purposes=purposes.labels(purposes.vocabulary(session, retired=True), current_language()),
        revoke_form=RevokeForm(),
        protect_form=ProtectOnlyForm(formdata=None, on="0" if subject.protect_only else "1"),
        destroy_form=DestroyOnWithdrawalForm(
            formdata=None, on="0" if subject.destroy_templates_on_withdrawal else "1"
        ),
        face_templates=template_count(session, subject_id, Modality.FACE),
        voice_templates=template_count(session, subject_id, Modality.VOICE),
        recent=rights.ledger(session, subject_id, limit=5),
    )


@bp.route("/activity")
@login_required
def activity():
    session = db.session()
    subject = acting_subject(session)
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    job = request.args.get("job") or None  # one job: the link of a notice about it
    entries = rights.ledger(
        session, subject.id, limit=LEDGER_PAGE + 1, offset=(page - 1) * LEDGER_PAGE, job_id=job
    )
    return render_template(
        "consent/activity.html",
        purposes=purposes.labels(purposes.vocabulary(session, retired=True), current_language()),
        entries=entries[:LEDGER_PAGE],
        page=page,
        more=len(entries) > LEDGER_PAGE,
        job=job,
    )


def _receipt(grant_id: str, version: int) -> rights.ReceiptShown:
    session = db.session()
    subject = acting_subject(session)
    # NotFound if not theirs
    row = consent.grant_version(session, row_id(subject), grant_id, version)
    return rights.receipt_shown(
        session,
        subject,
        row,
        Controller.from_settings(services().settings),
        services().settings.public_url,
    )


@bp.route("/grants/<grant_id>/v<int:version>/receipt")
@login_required
def receipt_page(grant_id: str, version: int) -> str:
    """The receipt to read and print: every field explained, the JWS and how to verify it."""
    public_url = services().settings.public_url.rstrip("/")
    return render_template(
        "rights/receipt.html",
        receipt=_receipt(grant_id, version),
        # Where the receipt's own links point (PUBLIC_URL), not the host this request came by.
        public_url=public_url,
        jwks_url=public_url + url_for("tokens.jwks"),
    )


def _not_signed_yet() -> Response:
    return Response(
        _("The signed copy of this receipt is being prepared. Try again in a minute."),
        status=409,
        mimetype="text/plain",
        headers={"Retry-After": "30", "Cache-Control": "no-store"},
    )


@bp.route("/grants/<grant_id>/v<int:version>/receipt.json")
@login_required
def receipt(grant_id: str, version: int):
    """The signed receipt's content, exactly as signed (409 until a worker has signed it)."""
    shown = _receipt(grant_id, version)
    if not shown.signed:
        return _not_signed_yet()
    filename = f"consent-receipt-{grant_id}-v{version}.json"
    return Response(
        json.dumps(shown.content, indent=2, ensure_ascii=False),
        mimetype="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@bp.route("/grants/<grant_id>/v<int:version>/receipt.jws")
@login_required
def receipt_jws(grant_id: str, version: int):
    """The signed receipt: a compact JWS (typ consent-receipt+jwt), checked with
    `consent-service receipts verify FILE`."""
    shown = _receipt(grant_id, version)
    if shown.jws is None:
        return _not_signed_yet()
    filename = f"consent-receipt-{grant_id}-v{version}.jws"
    return Response(
        shown.jws,
        mimetype="application/jose",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@bp.route("/account/export.json")
@login_required
def export():
    session = db.session()
    user = session.merge(current_user._get_current_object())
    body = rights.export(
        session,
        user,
        Controller.from_settings(services().settings),
        services().settings.public_url,
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
def delete_account():
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
            flash(exc.localized(), "error")  # a wrong password, in the page's language
        else:
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


@bp.route("/children/<int:child_id>/delete", methods=["GET", "POST"])
@login_required
def delete_child(child_id: int):
    session = db.session()
    try:
        child = accounts.acting_subject(session, current_user, child_id)
    except NotFound:
        abort(404)
    form = DeleteAccountForm()
    if form.validate_on_submit():
        evidence = Evidence(
            actor=f"user:{current_user.id}",
            identity_method="password-confirmed",
            ip=request.remote_addr,
            user_agent=request.user_agent.string,
            guardian=accounts.guardian_evidence(session, child),
        )
        name = child.display_name
        try:
            rights.delete_child(
                session,
                services().media_store,
                services().audit_key,
                current_user,
                form.password.data or "",
                child,
                evidence,
            )
        except DomainError as exc:
            flash(exc.localized(), "error")
        else:
            if web_session.get(SESSION_KEY) == child_id:
                web_session.pop(SESSION_KEY, None)
            flash(
                _(
                    "%(name)s's face and voice templates are destroyed and their grants revoked.",
                    name=name,
                )
            )
            return redirect(url_for("rights.dashboard"))
    status = 400 if request.method == "POST" else 200
    return render_template("guardians/delete.html", form=form, child=child), status
