"""The providers' JSON API: submit a job, read its decision."""

from __future__ import annotations

import hashlib

from flask import Blueprint, g, jsonify, request, url_for

from consent_service import db
from consent_service.api_contract import idempotency
from consent_service.api_contract.operations import api_operation
from consent_service.gate import service
from consent_service.gate.public import decided_job_view, job_view
from consent_service.gate.schemas import JobPublic, JobSubmission
from consent_service.runtime import services
from consent_service.web import require_provider

bp = Blueprint("api", __name__, url_prefix="/api/v1")


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
    job, decision = service.find_job(session, g.provider, job_id)
    view = decided_job_view(session, job, decision, services().pseudonym_key)
    return jsonify(view.model_dump(mode="json"))
