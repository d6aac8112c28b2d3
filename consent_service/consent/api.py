"""The consent capability's API: the purpose vocabulary, for providers to state their jobs'
purposes with (and for anyone to read what people grant by)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from consent_service import db
from consent_service.api_contract import ratelimit
from consent_service.api_contract.operations import api_operation
from consent_service.consent.purposes import vocabulary
from consent_service.consent.schemas import PurposeList, PurposePublic

bp = Blueprint("consent_api", __name__, url_prefix="/api/v1")


@bp.get("/purposes")
@api_operation(
    "List the purposes a job may state",
    description="No API key: the operator's purpose vocabulary in force, each code with its "
    "English and Chinese label. A job's `purpose` must be one of these codes. Limited per "
    "client address.",
    responses={200: PurposeList},
    errors=(429,),
    # Public, hence no scope: the vocabulary is what people grant by, nothing of a provider's.
    authenticated=False,
    tags=("purposes",),
)
def list_purposes() -> Response:
    ratelimit.enforce(f"purposes:{request.remote_addr}")
    listed = PurposeList(
        purposes=[
            PurposePublic(code=p.code, label_en=p.label_en, label_zh=p.label_zh)
            for p in vocabulary(db.session())
        ]
    )
    return jsonify(listed.model_dump(mode="json"))
