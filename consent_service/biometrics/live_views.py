"""Live pages: the live consent session (one continuous recording while the page shows the
script's moves and code on a timer; enrollment, or the step-up check an action waits for) and
its status. The addresses of the retired camera and microphone pages lead to it."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlmodel import select

from consent_service import db
from consent_service.accounts import step_up as step_ups
from consent_service.accounts.models import StepUp, Subject
from consent_service.biometrics import live_recording, live_session, voice_service
from consent_service.biometrics.live_models import LiveSession
from consent_service.errors import DomainError, stored_message
from consent_service.i18n import current_language
from consent_service.rows import row_id
from consent_service.runtime import services
from consent_service.vocabulary import LivePurpose, LiveSessionStatus, Modality, StepUpStatus
from consent_service.web import acting_subject

bp = Blueprint("live_enrollment", __name__)


@bp.route("/enroll/live")
@bp.route("/enroll/voice/live")
def retired_live_pages():
    """The two retired enrollment pages (three camera pictures; a phrase read aloud): their
    bookmarks and links in old mails lead to the live consent session."""
    return redirect(url_for("live_enrollment.live_session_page"))


# ------------------------------------------------------------------ the live consent session
def _session_page(row: LiveSession, step_up: StepUp | None = None):
    settings = services().settings
    return render_template(
        "biometrics/live_session.html",
        live=row,
        step_up=step_up,
        # What the page shows for each move, in its language (live_recording's prompts).
        prompts={m: _(p) for m, p in live_recording.MOVE_PROMPTS.items()},
        move_seconds=live_recording.MOVE_SECONDS,
        code_seconds=live_recording.CODE_SECONDS,
        statement_seconds=live_recording.STATEMENT_SECONDS if row.statement else 0,
        max_seconds=settings.live_recording_max_seconds,
        minutes=max(1, settings.live_session_ttl // 60),
        voice=voice_service.voice_available(),
    )


@bp.route("/live")
@login_required
def live_session_page():
    """Enroll with a live consent session: face (and voice, where available) from one clip."""
    session = db.session()
    subject = acting_subject(session)
    settings = services().settings
    try:
        row = live_session.issue(
            session,
            row_id(subject),
            LivePurpose.ENROLL,
            current_language(),
            settings.live_session_ttl,
            rng=live_session.script_rng(settings.live_script_seed),
        )
    except DomainError as exc:
        abort(403, exc.localized())
    return _session_page(row)


@bp.route("/live/step-up/<step_up_id>")
@login_required
def step_up_page(step_up_id: str):
    """The short live check an action (a grant, a consent request's approval) waits for."""
    session = db.session()
    try:
        action = step_ups.waiting_for(session, step_up_id, current_user.id)
    except DomainError as exc:
        abort(404 if exc.status == 404 else 400, exc.localized())
    settings = services().settings
    row = live_session.issue(
        session,
        action.subject_id,
        LivePurpose.STEP_UP,
        current_language(),
        settings.live_session_ttl,
        rng=live_session.script_rng(settings.live_script_seed),
        modality=Modality(action.modality),
        step_up_id=action.id,
        statement=step_ups.statement_of(action),
    )
    action.live_session_id = row.id
    session.add(action)
    return _session_page(row, action)


def _own_subject_ids(session) -> set[int]:
    """The subjects the account acts for: its own and the children it manages (a managed
    child's subject belongs to the guardian's account)."""
    return set(session.exec(select(Subject.id).where(Subject.user_id == current_user.id)).all())


@bp.route("/live/<session_id>", methods=["POST"])
@login_required
def upload_live_session(session_id: str):
    """The page's one recording (video and audio), CSRF token in a header."""
    session = db.session()
    upload = request.files.get("recording")
    recording = upload.read() if upload is not None else b""
    svc = services()
    try:
        row = session.get(LiveSession, session_id) if len(session_id) <= 32 else None
        subject_id = row.subject_id if row and row.subject_id in _own_subject_ids(session) else -1
        row = live_session.submit(
            session,
            svc.recording_store,
            subject_id,
            session_id,
            recording,
            (upload.mimetype if upload is not None else "") or "video/webm",
            svc.settings.live_recording_max_bytes,
        )
    except DomainError as exc:
        return jsonify(error=exc.localized()), exc.status
    return jsonify(
        session_id=row.id,
        status_url=url_for("live_enrollment.live_session_status", session_id=row.id),
    ), 202


@bp.route("/live/<session_id>/status")
@login_required
def live_session_status(session_id: str):
    """Where the session stands (the page polls it): its status, what to say, where next."""
    session = db.session()
    try:
        row = live_session.own_session(session, _own_subject_ids(session), session_id)
    except DomainError as exc:
        return jsonify(error=exc.localized()), exc.status
    status, message, next_url = row.status, stored_message(row.error, row.error_params), None
    action = session.get(StepUp, row.step_up_id) if row.step_up_id else None
    if action is not None and row.status == LiveSessionStatus.PASSED.value:
        if action.status == StepUpStatus.DONE.value:
            next_url = action.return_to
        elif action.status == StepUpStatus.FAILED.value:
            status, message = "failed", stored_message(action.error, action.error_params)
    elif row.status == LiveSessionStatus.PASSED.value:
        next_url = url_for("biometrics.enroll")
    return jsonify(status=status, message=message, next=next_url, failures=row.failures)
