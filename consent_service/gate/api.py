"""The providers' JSON API: submit a job, read its decision."""

from __future__ import annotations

import hashlib
from functools import wraps

from flask import Blueprint, g, jsonify, request, url_for

from consent_service import db
from consent_service.api_contract import idempotency, ratelimit
from consent_service.api_contract.operations import api_operation
from consent_service.errors_http import problem
from consent_service.gate import service
from consent_service.gate.public import job_view
from consent_service.gate.schemas import JobPublic, JobSubmission
from consent_service.providers.service import authenticate_key
from consent_service.services import services

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
        ratelimit.enforce(_api_key())
        return view(*args, **kwargs)

    return wrapper


@bp.post("/jobs")
@api_operation(
    "Submit a planned edit for gating",
    description="Queues a job (202). A repeated Idempotency-Key answers with the first job "
    "(200). Poll the job, or wait for the webhook, for the decision.",
    responses={202: JobPublic, 200: JobPublic},
    body=JobSubmission,
    media_type="multipart/form-data",
    tags=("jobs",),
)
@require_provider
def submit_job():
    session = db.session()
    key = idempotency.request_key()
    form = JobSubmission.from_request(request.form, request.files)
    uploads = form.uploads()
    job, created = idempotency.create_once(
        session,
        lambda: service.submit_job(
            session, services().media_store, g.provider, form.operation, uploads, key
        ),
    )
    body = _job_public(session, job)
    if not created:
        idempotency.require_same_request(
            (body["operation"], [(m["role"], m["sha256"]) for m in body["media"]]),
            (form.operation.value, [(u.role, hashlib.sha256(u.data).hexdigest()) for u in uploads]),
        )
    response = jsonify(body)
    response.status_code = 202 if created else 200
    response.headers["Location"] = url_for("api.get_job", job_id=job.id)
    if not created:
        response.headers[idempotency.REPLAYED_HEADER] = "true"
    return response


def _job_public(session, job) -> dict:
    return job_view(session, job, services().pseudonym_key).model_dump(mode="json")


@bp.get("/jobs/<job_id>")
@api_operation(
    "Read a job and its decision",
    description="Another provider's job id is a 404, like a missing one.",
    responses={200: JobPublic},
    errors=(404,),
    tags=("jobs",),
)
@require_provider
def get_job(job_id: str):
    session = db.session()
    return jsonify(_job_public(session, service.get_job(session, g.provider, job_id)))
