"""The provider's label endpoint: send the output of an allowed job, get it back labelled."""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from consent_service import db
from consent_service.api_contract.operations import api_operation
from consent_service.labels import service
from consent_service.labels.schemas import LabelUpload
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Scope
from consent_service.web import require_provider

bp = Blueprint("labels_api", __name__, url_prefix="/api/v1")


@bp.post("/jobs/<job_id>/label")
@api_operation(
    "Label the output of an allowed job",
    description="Send the edited file (JPEG, PNG or MP4) as `file`; the answer is the same "
    "file with GB 45438's `AIGC` object (XMP in images; in the C2PA manifest too, the only "
    "place an MP4 carries it) and a signed C2PA manifest whose consent assertion names the "
    "decision, the operation, the token's SHA-256 and its public status URL. 409 when the "
    "job's decision is not an `allow` that still stands; 422 for another kind of file; 503 "
    "when no label certificate is configured. The file is not kept.",
    responses={200: None},
    files=tuple(service.EXTENSIONS),
    body=LabelUpload,
    media_type="multipart/form-data",
    errors=(404, 409, 503),
    tags=("labels",),
    scope=Scope.LABELS,
)
@require_provider
def label_job(job_id: str) -> Response:
    upload = LabelUpload.from_request(request.files).file
    svc = services()
    label = service.label_for_job(
        db.session(), g.provider, job_id, svc.settings.public_url, utcnow()
    )
    data, media_type = service.embed(
        upload.read(),
        label,
        service.signing_credentials(lambda: svc.label_credentials),
        title=upload.filename or job_id,
    )
    response = Response(data, mimetype=media_type)
    name = f"{job_id}-labelled.{service.EXTENSIONS[media_type]}"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response
