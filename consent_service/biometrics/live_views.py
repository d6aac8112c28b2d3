"""Live face enrollment pages: the camera page with its challenge, and the upload it sends."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, request, url_for
from flask_login import login_required

from consent_service import db
from consent_service.biometrics import liveness
from consent_service.errors import EnrollmentRejected
from consent_service.guardians.views import acting_subject
from consent_service.services import services
from workers import publish

bp = Blueprint("live_enrollment", __name__)


@bp.route("/enroll/live")
@login_required
def live():
    session = db.session()
    subject = acting_subject(session)
    challenge = liveness.issue_challenge(
        session, subject.id, services().settings.live_challenge_ttl
    )
    session.commit()
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
    try:
        enrollment = liveness.start_live_enrollment(
            session, services().media_store, subject.id, challenge_id, frames
        )
    except EnrollmentRejected as exc:
        session.rollback()
        return jsonify(error=str(exc)), exc.status
    session.commit()
    publish(current_app, "biometrics.enroll_face", enrollment.id)
    return jsonify(
        enrollment_id=enrollment.id,
        status_url=url_for("biometrics.enrollment", enrollment_id=enrollment.id),
    ), 202
