"""The public check page (`/labels/check`): anyone drops a file and reads whether it carries
this service's label, and whether the decision behind it still stands. Nothing is kept."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from consent_service import db
from consent_service.api_contract import ratelimit
from consent_service.errors import DomainError
from consent_service.labels import service
from consent_service.labels.forms import CheckForm
from consent_service.timeutil import utcnow

bp = Blueprint("labels", __name__)


@bp.route("/labels/check", methods=["GET", "POST"])
def check():
    form = CheckForm()
    found, decision, error, status = None, None, None, 200
    if form.validate_on_submit():
        # Public and each file read costs: counted per client address like the status URL.
        ratelimit.enforce(f"status:{request.remote_addr}")
        try:
            found = service.read(form.file.data.read())
        except DomainError as exc:
            error, status = exc.localized(), exc.status
        else:
            if found.digest:
                decision = service.status_of(db.session(), found.digest, utcnow())
    elif form.is_submitted():
        error, status = "; ".join(str(e) for es in form.errors.values() for e in es), 422
    return render_template(
        "labels/check.html", form=form, found=found, decision=decision, error=error
    ), status
