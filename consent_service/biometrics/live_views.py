"""Live enrollment pages: the camera page with its head-turn challenge and the pictures it sends;
the microphone page with its phrase to read and the recording it sends."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, abort, jsonify, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required

from consent_service import db
from consent_service.biometrics import liveness, voice_challenge, voice_service
from consent_service.biometrics.models import Enrollment
from consent_service.errors import DomainError
from consent_service.i18n import current_language
from consent_service.rows import row_id
from consent_service.runtime import services
from consent_service.web import acting_subject

bp = Blueprint("live_enrollment", __name__)


@bp.route("/enroll/live")
@login_required
def live():
    session = db.session()
    subject = acting_subject(session)
    challenge = liveness.issue_challenge(
        session, subject.id, services().settings.live_challenge_ttl
    )
    return render_template(
        "biometrics/live.html", challenge=challenge, ttl=services().settings.live_challenge_ttl
    )


@bp.route("/enroll/live/<challenge_id>", methods=["POST"])
@login_required
def upload(challenge_id: str):
    """The page's pictures, one per step in the challenge's order (CSRF token in a header)."""
    session = db.session()
    subject = acting_subject(session)
    frames = [f.read() for f in request.files.getlist("frames")]
    return _started(
        session,
        lambda: liveness.start_live_enrollment(
            session, services().media_store, row_id(subject), challenge_id, frames
        ),
    )


def _started(session, start: Callable[[], Enrollment]):
    """Run `start` (it uses up the challenge, keeps the media and registers the enrollment's
    task, sent once the request commits); answer 202 with its status page, else the error,
    localized (an error status: the request rolls back)."""
    try:
        enrollment = start()
    except DomainError as exc:
        return jsonify(error=exc.localized()), exc.status
    return jsonify(
        enrollment_id=enrollment.id,
        status_url=url_for("biometrics.enrollment", enrollment_id=enrollment.id),
    ), 202


@bp.route("/enroll/voice/live")
@login_required
def live_voice():
    if not voice_service.voice_available():
        abort(404, _("Voice enrollment is not available on this server."))
    session = db.session()
    subject = acting_subject(session)
    ttl = services().settings.live_challenge_ttl
    challenge = voice_challenge.issue_voice_challenge(session, subject.id, current_language(), ttl)
    return render_template(
        "biometrics/live_voice.html",
        challenge=challenge,
        ttl=ttl,
        min_seconds=voice_challenge.MIN_SECONDS,
        max_seconds=voice_challenge.MAX_SECONDS,
    )


@bp.route("/enroll/voice/live/<challenge_id>", methods=["POST"])
@login_required
def upload_voice(challenge_id: str):
    """The page's recording of the phrase (CSRF token in a header)."""
    session = db.session()
    subject = acting_subject(session)
    upload = request.files.get("recording")
    recording = upload.read() if upload is not None else b""
    svc = services()
    return _started(
        session,
        lambda: voice_challenge.start_live_voice_enrollment(
            session,
            svc.media_store,
            row_id(subject),
            challenge_id,
            recording,
            svc.settings.voice_recording_max_bytes,
        ),
    )
