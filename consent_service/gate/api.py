"""The providers' JSON API: submit a job, read its decision."""

from __future__ import annotations

from functools import wraps

from flask import Blueprint, current_app, g, jsonify, request, url_for
from sqlalchemy.exc import IntegrityError

from consent_service import db
from consent_service.errors_http import problem
from consent_service.gate import service
from consent_service.providers.service import authenticate_key
from consent_service.services import services
from consent_service.vocabulary import Role
from workers import publish

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _api_key() -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("X-API-Key")


def require_provider(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        provider = authenticate_key(db.session(), _api_key())
        if provider is None:  # one answer for missing, unknown, revoked and malformed keys
            response = problem(401, "Unauthorized", "A valid API key is required.")
            response.headers["WWW-Authenticate"] = 'Bearer realm="consent-service"'
            return response
        g.provider = provider
        return view(*args, **kwargs)

    return wrapper


@bp.post("/jobs")
@require_provider
def submit_job():
    uploads = [
        service.Upload(role=role.value, filename=f.filename or "", data=f.read())
        for role in Role
        for f in request.files.getlist(role.value)
    ]
    unknown = set(request.files) - {r.value for r in Role}
    if unknown:
        return problem(
            422,
            "InvalidRequest",
            f"Unknown file field(s) {sorted(unknown)}; name each file source or target.",
        )
    session = db.session()
    key = request.headers.get("Idempotency-Key")
    try:
        job, created = service.submit_job(
            session, services().media_store, g.provider, request.form.get("operation"), uploads, key
        )
        session.commit()
    except IntegrityError:  # the same Idempotency-Key raced in from a parallel request
        session.rollback()
        job, created = service.submit_job(
            session, services().media_store, g.provider, request.form.get("operation"), [], key
        )
    if created:
        publish(current_app, "gate.process_job", job.id)
    body = service.job_view(session, job, services().pseudonym_key)
    response = jsonify(body)
    response.status_code = 202 if created else 200
    response.headers["Location"] = url_for("api.get_job", job_id=job.id)
    return response


@bp.get("/jobs/<job_id>")
@require_provider
def get_job(job_id: str):
    session = db.session()
    job = service.get_job(session, g.provider, job_id)
    return jsonify(service.job_view(session, job, services().pseudonym_key))
