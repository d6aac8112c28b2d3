"""The operator console under /operator: providers, disputes, the audit chain, system health.
Every page needs an operator account (403 otherwise); every action is audited by its service."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlmodel import col, select

from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.accounts.service import subject_of
from consent_service.audit import service as audit
from consent_service.biometrics import live_recording, live_session
from consent_service.biometrics.live_models import LiveSession
from consent_service.biometrics.models import EnrollmentDispute
from consent_service.complaints import service as complaints
from consent_service.complaints.forms import AcknowledgeForm, AskProviderForm
from consent_service.complaints.forms import ResolveForm as ResolveComplaintForm
from consent_service.consent import purposes as vocabulary
from consent_service.errors import DomainError
from consent_service.i18n.labels import PROVIDER_STATUSES
from consent_service.notices import service as notices
from consent_service.notices.models import SubjectNotice
from consent_service.operators import service
from consent_service.operators.forms import (
    ApproveRecordingForm,
    ProviderStatusForm,
    PurposeForm,
    RejectRecordingForm,
    ResolveDisputeForm,
    RetirePurposeForm,
)
from consent_service.providers.models import Provider
from consent_service.queues import ALL_QUEUES
from consent_service.runtime import services
from consent_service.tasking import queue_consumers
from consent_service.timeutil import utcnow
from consent_service.vocabulary import ProviderStatus

bp = Blueprint("operators", __name__, url_prefix="/operator")
# Seconds the health page waits for the gallery shards' workers to answer (GALLERY_SHARDS > 1).
SHARD_PING_TIMEOUT = 1.0


@bp.before_request
@login_required
def _operators_only():
    if not current_user.is_operator:
        abort(403)
    if not current_user.has_totp:  # sent here from sign-in too; no console without it
        flash(_("Operators sign in with a second factor: set it up now."))
        return redirect(url_for("accounts.two_factor", next=request.path))


def _actor() -> str:
    return f"operator:{current_user.id}"


@bp.app_context_processor
def _notices():
    """`subject_notices()` in templates: the signed-in person's notices, newest first."""

    def subject_notices(limit: int = 10, subject: Subject | None = None) -> list[SubjectNotice]:
        """`subject`: the one the page acts for (the dashboard's: the account's own, or a child
        it manages, as `web.acting_subject` checked); else the account's own."""
        if not current_user.is_authenticated:
            return []
        session = db.session()
        subject = subject or subject_of(session, current_user)
        return list(
            session.exec(
                select(SubjectNotice)
                .where(SubjectNotice.subject_id == subject.id)
                .order_by(col(SubjectNotice.id).desc())
                .limit(limit)
            ).all()
        )

    # `notice_text(n)`: a notice in the page's language.
    return {"subject_notices": subject_notices, "notice_text": notices.text_of}


@bp.route("/")
def index():
    session = db.session()
    return render_template(
        "operators/index.html",
        providers=service.list_providers(session),
        disputes=service.list_disputes(session),
        form=ProviderStatusForm(),
    )


@bp.route("/providers/<provider_id>/status", methods=["POST"])
def provider_status(provider_id: str):
    form = ProviderStatusForm()
    if not form.validate_on_submit():
        abort(400)
    provider = service.set_provider_status(
        db.session(), services().audit_key, _actor(), provider_id, form.status.data
    )
    flash(
        _(
            "%(name)s is now %(status)s.",
            name=provider.name,
            status=PROVIDER_STATUSES[ProviderStatus(provider.status)],
        ),
        "ok",
    )
    return redirect(url_for(".index"))


def _mail_notices(svc) -> None:
    """Mail the notices the request wrote (and any left over), in a unit of work of its own."""
    with db.unit_of_work() as s:
        notices.mail_notices(s, svc.mailer, svc.settings.mail_from)


@bp.route("/disputes/<dispute_id>", methods=["GET", "POST"])
def dispute(dispute_id: str):
    session = db.session()
    form = ResolveDisputeForm()
    if form.validate_on_submit():
        svc = services()
        row = service.resolve_dispute(
            session,
            svc.envelope,
            svc.audit_key,
            _actor(),
            dispute_id,
            service.Resolution(form.resolution.data),
            form.note.data or "",
        )
        db.after_commit(session, lambda: _mail_notices(svc))  # once committed, by mail too
        flash(f"Dispute resolved: {row.status}.", "ok")
        return redirect(url_for(".index"))
    dispute = session.get(EnrollmentDispute, dispute_id)
    if dispute is None:
        abort(404)
    return render_template(
        "operators/dispute.html",
        dispute=dispute,
        form=form,
        claimant=_email_of(session, dispute.claimant_subject_id),
        holder=_email_of(session, dispute.holder_subject_id),
    )


def _email_of(session, subject_id: int) -> str:
    subject = session.get(Subject, subject_id)
    user = session.get(User, subject.user_id) if subject else None
    return user.email if user and user.email else "(deleted account)"


@bp.route("/audit")
def audit_chain():
    session = db.session()
    report = audit.verify(session, services().audit_key)
    return render_template(
        "operators/audit.html", report=report, events=service.latest_events(session)
    )


@bp.route("/health")
def health():
    settings = services().settings
    report = service.health(
        db.session(),
        settings.celery_broker_url,
        list(ALL_QUEUES),
        utcnow(),
        gallery_shards=settings.gallery_shards,
        # Only with shards: the broadcast waits its whole timeout for the answers.
        gallery_consumers=(
            queue_consumers(current_app.extensions["celery"], SHARD_PING_TIMEOUT)
            if settings.gallery_shards > 1
            else None
        ),
    )
    return render_template(
        "operators/health.html", health=report, now=utcnow(), ping_timeout=SHARD_PING_TIMEOUT
    )


# ------------------------------------------------------------------ live recordings to review
@bp.route("/reviews")
def reviews():
    session = db.session()
    rows = live_session.awaiting_review(session)
    return render_template(
        "operators/reviews.html",
        rows=rows,
        emails={r.subject_id: _email_of(session, r.subject_id) for r in rows},
    )


@bp.route("/reviews/<session_id>")
def review(session_id: str):
    session = db.session()
    row = session.get(LiveSession, session_id) if len(session_id) <= 32 else None
    if row is None:
        abort(404)
    return render_template(
        "operators/review.html",
        live=row,
        # The moves in the words the person was shown, in the operator's language.
        prompts={m: _(p) for m, p in live_recording.MOVE_PROMPTS.items()},
        email=_email_of(session, row.subject_id),
        approve_form=ApproveRecordingForm(),
        reject_form=RejectRecordingForm(),
    )


@bp.route("/reviews/<session_id>/recording")
def review_recording(session_id: str):
    """The sealed recording, decrypted for this operator only; every view is audited."""
    svc = services()
    try:
        data, content_type = live_session.recording_for_review(
            db.session(), svc.audit_key, svc.recording_store, session_id, _actor()
        )
    except (DomainError, KeyError):
        abort(404)
    response = Response(data, mimetype=content_type.split(";")[0])
    response.headers["Cache-Control"] = "no-store, private"
    response.headers["Content-Disposition"] = "inline"
    return response


@bp.route("/reviews/<session_id>/approve", methods=["POST"])
def review_approve(session_id: str):
    form = ApproveRecordingForm()
    if not form.validate_on_submit():
        abort(400)
    svc = services()
    session = db.session()
    live_session.approve(
        session,
        svc.audit_key,
        svc.recording_store,
        session_id,
        _actor(),
        form.note.data or "",
        bool(form.document_seen.data),
    )
    db.after_commit(session, lambda: _mail_notices(svc))
    flash(_("Recording approved: the person's assurance is now reviewed."), "ok")
    return redirect(url_for(".reviews"))


@bp.route("/reviews/<session_id>/reject", methods=["POST"])
def review_reject(session_id: str):
    form = RejectRecordingForm()
    if not form.validate_on_submit():
        flash(_("Say why the recording is rejected; the person is told."), "error")
        return redirect(url_for(".review", session_id=session_id))
    svc = services()
    session = db.session()
    live_session.reject(
        session, svc.audit_key, svc.recording_store, session_id, _actor(), form.reason.data or ""
    )
    db.after_commit(session, lambda: _mail_notices(svc))
    flash(_("Recording rejected: its templates were removed and the person was told."), "ok")
    return redirect(url_for(".reviews"))


# ---------------------------------------------------------------------------- complaints
def _complaint_limits() -> complaints.Limits:
    s = services().settings
    return complaints.Limits(s.complaint_ack_hours, s.complaint_resolve_days)


@bp.route("/complaints")
def complaint_queue():
    """Open complaints with their two clocks (acknowledge, resolve), the one due first on top."""
    everything = request.args.get("all") == "1"
    return render_template(
        "operators/complaints.html",
        rows=complaints.queue(db.session(), include_resolved=everything),
        everything=everything,
        now=utcnow(),
        limits=_complaint_limits(),
        ack_clock=complaints.ack_clock,
        resolve_clock=complaints.resolve_clock,
    )


@bp.route("/complaints/<complaint_id>")
def complaint(complaint_id: str):
    session = db.session()
    try:
        row = complaints.get(session, complaint_id)
    except DomainError:
        abort(404)
    now = utcnow()
    return render_template(
        "operators/complaint.html",
        c=row,
        provider=session.get(Provider, row.provider_id) if row.provider_id else None,
        ack=complaints.ack_clock(row, now),
        resolve=complaints.resolve_clock(row, now),
        ack_form=AcknowledgeForm(),
        ask_form=AskProviderForm(),
        resolve_form=ResolveComplaintForm(),
    )


@bp.route("/complaints/<complaint_id>/evidence")
def complaint_evidence(complaint_id: str):
    """The sealed evidence, opened for this operator only; every view is audited."""
    svc = services()
    session = db.session()
    try:
        row = complaints.get(session, complaint_id)
        data = complaints.view_evidence(session, svc.audit_key, svc.evidence_store, row, _actor())
    except DomainError:
        abort(404)
    response = Response(data, mimetype=row.evidence_type or "application/octet-stream")
    response.headers["Cache-Control"] = "no-store, private"
    response.headers["Content-Disposition"] = "inline"
    return response


def _complaint_action(complaint_id: str, form, act):
    """Run one operator action on a complaint in a savepoint: a refusal is flashed and undone."""
    session = db.session()
    if not form.validate_on_submit():
        flash(_("Fill in the form to do that."), "error")
        return redirect(url_for(".complaint", complaint_id=complaint_id))
    try:
        with db.savepoint(session):
            row = act(session, complaints.get(session, complaint_id))
    except DomainError as exc:
        flash(exc.localized(), "error")
    else:
        flash(
            _("Complaint %(reference)s: %(status)s.", reference=row.reference, status=row.status),
            "ok",
        )
    return redirect(url_for(".complaint", complaint_id=complaint_id))


@bp.route("/complaints/<complaint_id>/acknowledge", methods=["POST"])
def complaint_acknowledge(complaint_id: str):
    svc = services()
    return _complaint_action(
        complaint_id,
        AcknowledgeForm(),
        lambda s, row: complaints.acknowledge(s, svc.audit_key, row, _actor()),
    )


@bp.route("/complaints/<complaint_id>/ask", methods=["POST"])
def complaint_ask(complaint_id: str):
    svc = services()
    form = AskProviderForm()
    return _complaint_action(
        complaint_id,
        form,
        lambda s, row: complaints.ask_provider(
            s,
            svc.audit_key,
            svc.decision_keys.public_keys(),
            row,
            _actor(),
            form.question.data or "",
            form.named.data or "",
        ),
    )


@bp.route("/complaints/<complaint_id>/resolve", methods=["POST"])
def complaint_resolve(complaint_id: str):
    svc = services()
    form = ResolveComplaintForm()

    def act(s, row):
        done = complaints.resolve(
            s, svc.audit_key, row, _actor(), form.outcome.data or "", form.message.data or ""
        )
        message = complaints.resolved_mail(done, svc.settings.mail_from)

        def send() -> None:
            try:
                svc.mailer.send(message)
            except OSError as exc:
                current_app.logger.warning(
                    "complaint %s: the mail could not be sent: %s", done.id, exc
                )

        db.after_commit(s, send)
        return done

    return _complaint_action(complaint_id, form, act)


@bp.route("/purposes", methods=["GET", "POST"])
def purposes():
    """The purpose vocabulary jobs state and grants cover (`consent.purposes`): every purpose
    ever added, in force or retired; add one (or bring a retired one back), retire one."""
    session = db.session()
    form = PurposeForm()
    if form.validate_on_submit():
        try:
            with db.savepoint(session):
                row = vocabulary.add(
                    session,
                    services().audit_key,
                    (form.code.data or "").strip(),
                    form.label_en.data or "",
                    form.label_zh.data or "",
                    _actor(),
                )
        except DomainError as exc:
            flash(exc.localized(), "error")
        else:
            flash(_("Purpose %(code)s is in force.", code=row.code), "ok")
            return redirect(url_for(".purposes"))
    elif form.is_submitted():
        flash(_("Fill in the form to do that."), "error")
    return render_template(
        "operators/purposes.html",
        rows=vocabulary.vocabulary(session, retired=True),
        form=form,
        retire_form=RetirePurposeForm(),
    )


@bp.route("/purposes/<code>/retire", methods=["POST"])
def retire_purpose(code: str):
    session = db.session()
    if not RetirePurposeForm().validate_on_submit():
        abort(400)
    try:
        with db.savepoint(session):
            vocabulary.retire(session, services().audit_key, code, _actor())
    except DomainError as exc:
        flash(exc.localized(), "error")
    else:
        flash(
            _("Purpose %(code)s is retired: new jobs and grants cannot name it.", code=code), "ok"
        )
    return redirect(url_for(".purposes"))
