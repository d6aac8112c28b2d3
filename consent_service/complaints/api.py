"""The complaints API of the provider concerned: read a complaint it was told about
(`complaint.opened`) and answer it. Another provider's complaint is a 404."""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify

from consent_service import db
from consent_service.api_contract import idempotency
from consent_service.api_contract.operations import api_operation, request_body
from consent_service.complaints import service
from consent_service.complaints.schemas import ComplaintAnswer, ComplaintForProvider
from consent_service.runtime import services
from consent_service.vocabulary import Scope
from consent_service.web import require_provider

bp = Blueprint("complaints_api", __name__, url_prefix="/api/v1")


@bp.get("/complaints/<complaint_id>")
@api_operation(
    "Read a complaint about your content",
    description="A complaint you were told about by `complaint.opened`: what the complainant "
    "says happened and where, the job or decision it names, the operator's question, your "
    "answer and, once resolved, the outcome. Never the complainant's address or evidence.",
    responses={200: ComplaintForProvider},
    errors=(404,),
    tags=("complaints",),
    # A complaint is about content the provider's jobs made: read with the jobs it reads,
    # answered (content taken down or not) with the key that submits them.
    scope=Scope.JOBS_READ,
)
@require_provider
def get_complaint(complaint_id: str) -> Response:
    complaint = service.for_provider(db.session(), g.provider, complaint_id)
    return jsonify(service.provider_view(complaint).model_dump(mode="json"))


@bp.post("/complaints/<complaint_id>/answer")
@api_operation(
    "Answer a complaint about your content",
    description="What you found and did (took the content down or not); the operator reads it "
    "before resolving. A later answer replaces the earlier one; a resolved complaint is a 409.",
    responses={200: ComplaintForProvider},
    body=ComplaintAnswer,
    errors=(404, 409),
    tags=("complaints",),
    scope=Scope.JOBS_WRITE,
)
@require_provider
def answer_complaint(complaint_id: str) -> Response:
    idempotency.request_key()  # checked like on every POST; answering again replaces the answer
    body = request_body(ComplaintAnswer)
    complaint = service.answer(
        db.session(),
        services().audit_key,
        g.provider,
        complaint_id,
        body.answer,
        body.content_removed,
    )
    return jsonify(service.provider_view(complaint).model_dump(mode="json"))
