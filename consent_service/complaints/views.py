"""The public complaint pages: the form (`/complaints/new`, no account needed; a signed-in
person finds their address and name filled in) and the status page behind the mailed link.
The published time limits are shown on both."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_login import current_user
from sqlmodel import Session

from consent_service import db
from consent_service.accounts.service import subject_of
from consent_service.api_contract.ratelimit import MailThrottled
from consent_service.complaints import service
from consent_service.complaints.forms import ComplaintForm
from consent_service.complaints.models import Complaint
from consent_service.errors import DomainError
from consent_service.i18n import current_language
from consent_service.runtime import services
from consent_service.timeutil import utcnow

bp = Blueprint("complaints", __name__)
log = logging.getLogger(__name__)


def limits() -> service.Limits:
    s = services().settings
    return service.Limits(s.complaint_ack_hours, s.complaint_resolve_days)


@bp.route("/complaints/new", methods=["GET", "POST"])
def new():
    session = db.session()
    svc = services()
    form = ComplaintForm()
    error, status = None, 200
    if request.method == "GET":
        form.language.data = current_language()
        if current_user.is_authenticated:
            form.email.data = current_user.email
            form.name.data = subject_of(session, current_user).display_name
    if form.validate_on_submit():
        upload = form.evidence.data
        evidence = (
            service.Evidence(upload.read(), upload.filename or "")
            if getattr(upload, "filename", "")
            else None
        )
        spec = service.ComplaintSpec(
            kind=form.kind.data or "",
            description=form.description.data or "",
            location=form.location.data or "",
            name=form.name.data or "",
            email=form.email.data or "",
            language=form.language.data or "",
            named=form.named.data or "",
            user_id=current_user.id if current_user.is_authenticated else None,
        )
        try:
            with db.savepoint(session):  # a refused complaint answers 200: keep none of it
                complaint, secret = service.file_complaint(
                    session,
                    svc.audit_key,
                    svc.evidence_store,
                    svc.decision_keys.public_keys(),
                    limits(),
                    spec,
                    evidence,
                    evidence_max_bytes=svc.settings.complaint_evidence_max_bytes,
                )
                # Filing mails the address given: a complaint that would be filed is counted
                # like an account mail, so nobody floods a mailbox (or the queue) through here.
                current_app.extensions["mail_throttle"].hit(
                    complaint.email, request.remote_addr or "-"
                )
        except MailThrottled as exc:
            error, status = exc.localized(), exc.status
        except DomainError as exc:
            error = exc.localized()
        else:
            _mail_received(session, complaint, secret)
            return redirect(url_for("complaints.status", reference=complaint.reference, k=secret))
    elif form.is_submitted():
        error = "; ".join(str(e) for errors in form.errors.values() for e in errors)
    page = render_template(
        "complaints/new.html",
        form=form,
        error=error,
        limits=limits(),
        max_mb=f"{svc.settings.complaint_evidence_max_bytes / 1e6:.0f}",
        types=service.EVIDENCE_TYPES,
    )
    return page, status


def _mail_received(session: Session, complaint: Complaint, secret: str) -> None:
    """The acknowledgement mail, once the complaint has committed; a failed send is logged
    (the complainant has the status page open already)."""
    svc = services()
    message = service.received_mail(
        complaint, secret, limits(), svc.settings.public_url, svc.settings.mail_from
    )

    def send() -> None:
        try:
            svc.mailer.send(message)
        except OSError as exc:
            log.warning("complaint %s: the mail could not be sent: %s", complaint.id, exc)

    db.after_commit(session, send)


@bp.get("/complaints/<reference>")
def status(reference: str):
    complaint = service.by_link(db.session(), reference, request.args.get("k"))
    now = utcnow()
    return render_template(
        "complaints/status.html",
        c=complaint,
        limits=limits(),
        ack=service.ack_clock(complaint, now),
        resolve=service.resolve_clock(complaint, now),
    )
