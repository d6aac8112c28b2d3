"""Enrollment pages: upload photos or a voice file (only where the operator allows uploads,
`ALLOW_UPLOADED_ENROLLMENT`; they give the lowest assurance, `uploaded`), then watch the worker
turn them into templates."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, MultipleFileField
from sqlmodel import select

from consent_service import db
from consent_service.biometrics import service, voice_service
from consent_service.biometrics.models import Enrollment
from consent_service.errors import DomainError, EnrollmentRejected, stored_message
from consent_service.runtime import services
from consent_service.vocabulary import Modality
from consent_service.web import acting_subject

bp = Blueprint("biometrics", __name__)


@bp.app_context_processor
def _enrollment_error():
    """`enrollment_error(e)` in templates: why an enrollment failed or waits, in the page's
    language (rows from before keep their English text)."""

    def enrollment_error(enrollment: Enrollment) -> str | None:
        return stored_message(enrollment.error, enrollment.error_params)

    return {"enrollment_error": enrollment_error}


class EnrollForm(FlaskForm):
    photos = MultipleFileField(_l("Photos of your face (1 to 5, only you in each)"))


class VoiceForm(FlaskForm):
    recording = FileField(_l("A recording of you reading aloud (about 10 to 30 seconds, only you)"))


@bp.route("/enroll", methods=["GET", "POST"])
@login_required
def enroll():
    session = db.session()
    subject = acting_subject(session)
    form = EnrollForm()
    uploads_allowed = services().settings.uploaded_enrollment_allowed
    if form.is_submitted() and not uploads_allowed:
        abort(403, _("Enrolling with photos is turned off here: enroll live with your camera."))
    if form.validate_on_submit():
        svc = services()
        photos = [f.read() for f in (form.photos.data or []) if getattr(f, "filename", "")]
        try:
            with db.savepoint(session):  # a refused upload answers 200: keep none of it
                enrollment = service.start_face_enrollment(
                    session,
                    svc.media_store,
                    subject.id,
                    photos,
                    svc.settings.enrollment_max_photos,
                )
        except EnrollmentRejected as exc:
            flash(exc.localized(), "error")
        else:
            return redirect(url_for("biometrics.enrollment", enrollment_id=enrollment.id))
    recent = session.exec(
        select(Enrollment)
        .where(Enrollment.subject_id == subject.id)
        .order_by(Enrollment.created_at.desc())
        .limit(5)
    ).all()
    return render_template(
        "biometrics/enroll.html",
        form=form,
        uploads_allowed=uploads_allowed,
        assurance=subject.assurance,
        voice_form=VoiceForm(formdata=None),
        voice_enabled=voice_service.voice_available(),
        recent=recent,
        templates=service.template_count(session, subject.id, Modality.FACE),
        voice_templates=service.template_count(session, subject.id, Modality.VOICE),
    )


@bp.route("/enroll/voice", methods=["POST"])
@login_required
def enroll_voice():
    session = db.session()
    subject = acting_subject(session)
    if not services().settings.uploaded_enrollment_allowed:
        abort(
            403,
            _("Enrolling with a voice file is turned off here: record your voice on the page."),
        )
    form = VoiceForm()
    if form.validate_on_submit():
        upload = form.recording.data
        recording = upload.read() if getattr(upload, "filename", "") else b""
        try:
            with db.savepoint(session):  # a refused recording redirects: keep none of it
                enrollment = voice_service.start_voice_enrollment(
                    session, services().media_store, subject.id, recording
                )
        except DomainError as exc:
            flash(exc.localized(), "error")
        else:
            return redirect(url_for("biometrics.enrollment", enrollment_id=enrollment.id))
    else:
        flash(_("The form expired; please upload the recording again."), "error")
    return redirect(url_for("biometrics.enroll"))


@bp.route("/enrollments/<enrollment_id>")
@login_required
def enrollment(enrollment_id: str):
    session = db.session()
    row = session.get(Enrollment, enrollment_id)
    if row is None or row.subject_id != acting_subject(session).id:
        abort(404)
    return render_template("biometrics/enrollment.html", enrollment=row)
