"""The providers' consent-request API: open a request, read its status."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, url_for
from sqlmodel import Session

from consent_service import db
from consent_service.api_contract import idempotency
from consent_service.api_contract.operations import api_operation, request_body
from consent_service.consent_requests import service
from consent_service.consent_requests.models import ConsentRequest
from consent_service.consent_requests.schemas import ConsentRequestCreate, ConsentRequestPublic
from consent_service.runtime import services
from consent_service.vocabulary import Scope
from consent_service.web import require_provider

bp = Blueprint("consent_requests_api", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)


def _public(req: ConsentRequest) -> dict[str, Any]:
    return service.provider_view(req).model_dump(mode="json")


@bp.post("/consent-requests")
@api_operation(
    "Ask a person for consent",
    description="For a job's needs_consent finding (job_id + finding index or subject_ref) or "
    "for an e-mail address. The person gets a link by e-mail, signs in (enrolling if the "
    "request is for a face found in the job: their face must match it) and approves or "
    "declines; an approval decides the job again (`job.decided`). 202 when created, 200 for "
    "a repeated Idempotency-Key.",
    responses={202: ConsentRequestPublic, 200: ConsentRequestPublic},
    body=ConsentRequestCreate,
    errors=(404,),
    tags=("consent requests",),
    scope=Scope.CONSENT_REQUESTS,
)
@require_provider
def create_request() -> Response:
    session = db.session()
    svc = services()
    key = idempotency.request_key()
    body = request_body(ConsentRequestCreate)
    spec = service.RequestSpec(
        job_id=body.job_id,
        finding=body.finding,
        subject_ref=body.subject_ref,
        email=body.email,
        operation=body.operation,
        roles=tuple(body.roles),
        purpose=body.purpose,
        message=body.message,
        valid_until=body.valid_until,
    )
    secret: list[str | None] = [None]

    def create() -> tuple[ConsentRequest, bool]:
        req, link_secret, created = service.open_request(
            session,
            svc.envelope,
            svc.audit_key,
            svc.pseudonyms,
            g.provider,
            spec,
            timedelta(seconds=svc.settings.consent_request_ttl),
            key,
        )
        secret[0] = link_secret
        return req, created

    req, created = idempotency.create_once(session, create)
    if created and secret[0]:
        _notify(session, req, secret[0])
    else:
        idempotency.require_same_request(
            (req.job_id, req.operation), (body.job_id, spec.operation or req.operation)
        )
    response = jsonify(_public(req))
    response.status_code = 202 if created else 200
    response.headers["Location"] = url_for("consent_requests_api.get_request", request_id=req.id)
    if not created:
        response.headers[idempotency.REPLAYED_HEADER] = "true"
    return response


def _notify(session: Session, req: ConsentRequest, secret: str) -> None:
    """Mail the link, in the recipient's language, once the request has committed. A failed
    send is logged; the request stays open."""
    svc = services()
    to = service.recipient(session, req)
    if to is None:
        return
    message = service.notification(
        req, to, secret, g.provider.name, svc.settings.public_url, svc.settings.mail_from
    )

    def send() -> None:
        try:
            svc.mailer.send(message)
        except OSError as exc:
            log.warning("consent request %s: the mail could not be sent: %s", req.id, exc)
        current_app.logger.info("consent request %s mailed", req.id)

    db.after_commit(session, send)


@bp.get("/consent-requests/<request_id>")
@api_operation(
    "Read a consent request and its status",
    description="pending, approved, declined or expired. Another provider's request is a 404.",
    responses={200: ConsentRequestPublic},
    errors=(404,),
    tags=("consent requests",),
    scope=Scope.CONSENT_REQUESTS,
)
@require_provider
def get_request(request_id: str) -> Response:
    session = db.session()
    return jsonify(_public(service.get_for_provider(session, g.provider, request_id)))
