"""The providers' JSON API: submit a job, read its decision; read and set the minimum assurance
each operation requires; and, for anyone, verify a decision token and read whether its decision
still stands."""

from __future__ import annotations

import hashlib

from flask import Blueprint, Response, g, jsonify, request, url_for

from consent_service import db
from consent_service.api_contract import idempotency, ratelimit
from consent_service.api_contract.operations import api_operation, request_body
from consent_service.gate import service, status
from consent_service.gate.public import job_view
from consent_service.gate.schemas import (
    AssuranceMinimums,
    DecisionStatus,
    JobPublic,
    JobSubmission,
    VerifyRequest,
    VerifyResult,
)
from consent_service.providers import service as providers
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from consent_service.tokens.service import verify_token
from consent_service.vocabulary import Operation, Scope
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
    scope=Scope.JOBS_WRITE,
)
@require_provider
def submit_job():
    session = db.session()
    key = idempotency.request_key()
    form = request_body(JobSubmission)
    uploads = form.uploads()
    job, created = idempotency.create_once(
        session,
        lambda: service.submit_job(
            session,
            services().media_store,
            g.provider,
            form.operation,
            uploads,
            key,
            purpose=form.purpose,
            purpose_detail=form.purpose_detail,
        ),
    )
    body = _job_public(session, job)
    if not created:
        idempotency.require_same_request(
            (
                body["operation"],
                body["purpose"],
                [(m["role"], m["sha256"]) for m in body["media"]],
            ),
            (
                form.operation.value,
                form.purpose,
                [(u.role, hashlib.sha256(u.data).hexdigest()) for u in uploads],
            ),
        )
    response = jsonify(body)
    response.status_code = 202 if created else 200
    response.headers["Location"] = url_for("api.get_job", job_id=job.id)
    if not created:
        response.headers[idempotency.REPLAYED_HEADER] = "true"
    return response


def _job_public(session, job) -> dict:
    return job_view(session, job.provider_id, job.id, services().pseudonyms).model_dump(mode="json")


@bp.get("/jobs/<job_id>")
@api_operation(
    "Read a job and its decision",
    description="Another provider's job id is a 404, like a missing one.",
    responses={200: JobPublic},
    errors=(404,),
    tags=("jobs",),
    scope=Scope.JOBS_READ,
)
@require_provider
def get_job(job_id: str):
    view = job_view(db.session(), g.provider.id, job_id, services().pseudonyms)
    return jsonify(view.model_dump(mode="json"))


# A status answer may be cached this long (seconds): a revocation reaches a caching reader
# within it, and a direct call at once.
STATUS_MAX_AGE = 60


@bp.post("/decisions/verify")
@api_operation(
    "Verify a decision token and whether its decision still stands",
    description="No API key: whoever holds an edited file (a platform, a person, a regulator) "
    "may check the decision behind it. 200 with the claims and the decision's `status` "
    "(valid, superseded, consent_withdrawn, consent_expired) when the token is valid; 422 with "
    "the reason when not. Tokens are short-lived (DECISION_TOKEN_TTL): with `accept_expired` "
    "a token past its `exp` is checked all the same and answered with `expired: true`, so a "
    "decision can be relied on for longer as long as its status is `valid`. The answer says "
    "nothing the token does not carry, except its status and its grants' present state. "
    "Limited per client address.",
    responses={200: VerifyResult},
    body=VerifyRequest,
    errors=(429,),
    # Public, hence no scope: a decision is checked by whoever holds the edited file, who has
    # no key of the provider's (and a key would tie the check to one provider).
    authenticated=False,
    tags=("decisions",),
)
def verify_decision() -> Response:
    # Public, so counted per client address rather than per key.
    ratelimit.enforce(f"verify:{request.remote_addr}")
    idempotency.request_key()  # checked like on every POST; verifying creates nothing
    body = request_body(VerifyRequest)
    svc = services()
    claims, kid = verify_token(
        body.token,
        svc.decision_keys.public_keys(),
        audience=body.audience,
        issuer=svc.settings.decision_token_issuer,
        allow_expired=body.accept_expired,
    )
    now = utcnow()
    session = db.session()
    revision = status.revision_of_claims(session, claims)
    standing = status.standing(session, revision, now) if revision is not None else None
    expires = claims["exp"]
    result = VerifyResult(
        valid=True,
        expired=isinstance(expires, int | float) and expires <= now.timestamp(),
        kid=kid,
        claims=claims,
        status=status.status_view(standing, now) if standing else None,
        grants=status.grants_view(standing) if standing else [],
    )
    response = jsonify(result.model_dump(mode="json"))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/decisions/<token_ref>/status")
@api_operation(
    "Whether a decision still stands (its public status URL)",
    description="No API key. `token_ref` is a decision token's id (`jti`, 32 hex digits) or "
    "the SHA-256 of the whole token (64 hex digits, as in the AIGC label's ReservedCode1). "
    "Answers only the status: valid, superseded (with the revision that replaced it), "
    "consent_withdrawn or consent_expired (with `since`); never the job, the provider, the "
    "person or the grant. An unknown token is a 404. Cacheable for a minute. Limited per "
    "client address.",
    responses={200: DecisionStatus},
    errors=(404, 429),
    authenticated=False,  # public like verify_decision: the status URL is in the label
    tags=("decisions",),
)
def decision_status(token_ref: str) -> Response:
    ratelimit.enforce(f"status:{request.remote_addr}")
    session = db.session()
    now = utcnow()
    standing = status.standing(session, status.find_revision(session, token_ref), now)
    response = jsonify(status.status_view(standing, now).model_dump(mode="json"))
    response.headers["Cache-Control"] = f"public, max-age={STATUS_MAX_AGE}"
    return response


@bp.get("/assurance-minimums")
@api_operation(
    "Read the minimum assurance per operation",
    description="How sure the service must be that each person found in a job enrolled their "
    "own face or voice (`uploaded` < `live` < `reviewed`), per operation; an operation left "
    "out requires none.",
    responses={200: AssuranceMinimums},
    tags=("settings",),
    # The minimums are part of how this provider's jobs are decided, so they go with the job
    # scopes rather than a sixth scope: reading them with reading jobs (a job's answer carries
    # `assurance_required` already), changing them with submitting jobs (the key that submits
    # is the integration whose decisions they shape). An integration that only reads results
    # cannot change them.
    scope=Scope.JOBS_READ,
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
    scope=Scope.JOBS_WRITE,  # see get_assurance_minimums
)
@require_provider
def put_assurance_minimums():
    body = request_body(AssuranceMinimums)
    minimums = providers.set_assurance_minimums(
        db.session(),
        services().audit_key,
        g.provider.id,
        {operation: body.minimums.get(operation) for operation in Operation},
        actor=f"provider:{g.provider.id}",
    )
    return jsonify(AssuranceMinimums(minimums=minimums).model_dump(mode="json"))
