"""The providers' JSON API: submit a job, read its decision; read and set the minimum assurance
each operation requires."""

from __future__ import annotations

import hashlib

from flask import Blueprint, g, jsonify, request, url_for

from consent_service import db
from consent_service.api_contract import idempotency
from consent_service.api_contract.operations import api_operation
from consent_service.gate import service
from consent_service.gate.public import job_view
from consent_service.gate.schemas import AssuranceMinimums, JobPublic, JobSubmission
from consent_service.providers import service as providers
from consent_service.runtime import services
from consent_service.vocabulary import Operation
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
    return jsonify(_job_public(session, service.get_job(session, g.provider, job_id)))


@bp.get("/assurance-minimums")
@api_operation(
    "Read the minimum assurance per operation",
    description="How sure the service must be that each person found in a job enrolled their "
    "own face or voice (`uploaded` < `live` < `reviewed`), per operation; an operation left "
    "out requires none.",
    responses={200: AssuranceMinimums},
    tags=("settings",),
)
@require_provider
def get_assurance_minimums():
    minimums = providers.assurance_minimums(db.session(), g.provider.id)
    return jsonify(AssuranceMinimums(minimums=minimums).model_dump(mode="json"))


@bp.put("/assurance-minimums")
@api_operation(
    "Set the minimum assurance per operation",
    description="Replaces the whole set: an operation left out requires none from now on. "
    "Decisions made from then on apply it (a job decided before keeps its decision). "
    "Audited.",
    responses={200: AssuranceMinimums},
    body=AssuranceMinimums,
    tags=("settings",),
)
@require_provider
def put_assurance_minimums():
    body = AssuranceMinimums.model_validate(request.get_json(silent=True))
    minimums = providers.set_assurance_minimums(
        db.session(),
        services().audit_key,
        g.provider.id,
        {operation: body.minimums.get(operation) for operation in Operation},
        actor=f"provider:{g.provider.id}",
    )
    return jsonify(AssuranceMinimums(minimums=minimums).model_dump(mode="json"))
