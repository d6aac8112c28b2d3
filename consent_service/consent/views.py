"""The person's dashboard: their face enrollment, their grants; grant and one-click revoke."""

from __future__ import annotations

from datetime import UTC, datetime, time

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlmodel import select
from wtforms import SelectChoice

from consent_service import db
from consent_service.accounts.service import subject_of
from consent_service.biometrics.service import template_count
from consent_service.consent import service
from consent_service.consent.forms import GrantForm, RevokeForm
from consent_service.errors import DomainError
from consent_service.providers.models import Provider
from consent_service.services import services
from consent_service.vocabulary import Modality, Operation, Role

bp = Blueprint("consent", __name__)


def _evidence() -> service.Evidence:
    return service.Evidence(
        actor=f"user:{current_user.id}",
        identity_method="password-session",
        language=request.accept_languages.best_match(["en", "zh"]) or "en",
        ip=request.remote_addr,
        user_agent=request.user_agent.string,
    )


@bp.route("/")
@login_required
def dashboard():
    session = db.session()
    subject = subject_of(session, current_user)
    providers = {p.id: p.name for p in session.exec(select(Provider))}
    return render_template(
        "consent/dashboard.html",
        subject=subject,
        grants=service.current_grants(session, [subject.id]),
        providers=providers,
        revoke_form=RevokeForm(),
        face_templates=template_count(session, subject.id, Modality.FACE),
    )


@bp.route("/grants/new", methods=["GET", "POST"])
@login_required
def new_grant():
    session = db.session()
    subject = subject_of(session, current_user)
    form = GrantForm()
    form.providers.choices = [
        SelectChoice(p.id, p.name)
        for p in session.exec(
            select(Provider).where(Provider.status == "active").order_by(Provider.name)
        )
    ]
    if form.validate_on_submit():
        until = form.valid_until.data
        req = service.GrantRequest(
            operations=[Operation(o) for o in form.operations.data],
            roles=[Role(r) for r in form.roles.data],
            all_providers=form.provider_scope.data == "all",
            provider_ids=list(form.providers.data or []),
            purpose=form.purpose.data or "",
            # An end date means the whole of that day, in UTC.
            valid_until=datetime.combine(until, time.max, tzinfo=UTC) if until else None,
        )
        try:
            service.grant(session, services().audit_key, subject.id, req, _evidence())
        except DomainError as exc:
            flash(str(exc), "error")
        else:
            session.commit()
            flash("Consent granted. You can revoke it at any time from this page.")
            return redirect(url_for("consent.dashboard"))
    status = 400 if request.method == "POST" else 200
    return render_template(
        "consent/grant.html", form=form, notice_version=service.NOTICE_VERSION
    ), status


@bp.route("/grants/<grant_id>/revoke", methods=["POST"])
@login_required
def revoke(grant_id: str):
    session = db.session()
    if RevokeForm().validate_on_submit():
        subject = subject_of(session, current_user)
        service.revoke(session, services().audit_key, subject.id, grant_id, _evidence())
        session.commit()
        flash("Consent revoked. Edits that relied on it are no longer allowed.")
    else:
        flash("The form expired; please try again.", "error")
    return redirect(url_for("consent.dashboard"))
