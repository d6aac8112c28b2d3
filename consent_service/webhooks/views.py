"""The providers' webhook API: configure the URL and events (the secret is shown once), read
the settings and the delivery log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify

from consent_service import db
from consent_service.api_contract import pagination
from consent_service.api_contract.operations import api_operation, request_body
from consent_service.api_contract.schemas import PageQuery
from consent_service.runtime import services
from consent_service.vocabulary import Scope
from consent_service.web import require_provider
from consent_service.webhooks import service
from consent_service.webhooks.models import Webhook
from consent_service.webhooks.schemas import (
    DeliveryList,
    WebhookPublic,
    WebhookUpdate,
)

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1")


def _public(webhook: Webhook, secret: str | None = None) -> dict[str, Any]:
    # `secret` is left out, not null, when it is not new.
    return service.webhook_view(webhook, secret).model_dump(mode="json", exclude_none=True)


@bp.put("/webhook")
@api_operation(
    "Configure the webhook",
    description="Creates or updates the provider's webhook. The signing secret is in the "
    "answer only when new: the first time, or with `rotate_secret`.",
    responses={200: WebhookPublic},
    body=WebhookUpdate,
    tags=("webhooks",),
    scope=Scope.WEBHOOKS_ADMIN,
)
@require_provider
def put_webhook() -> Response:
    body = request_body(WebhookUpdate)
    svc = services()
    session = db.session()
    webhook, secret = service.configure(
        session,
        svc.envelope,
        g.provider,
        body.url,
        events=body.events,
        active=body.active,
        rotate_secret=body.rotate_secret,
        allow_private=not svc.settings.is_production,
    )
    return jsonify(_public(webhook, secret))


@bp.get("/webhook")
@api_operation(
    "Read the webhook settings",
    responses={200: WebhookPublic},
    errors=(404,),
    tags=("webhooks",),
    scope=Scope.WEBHOOKS_ADMIN,
)
@require_provider
def get_webhook() -> Response:
    return jsonify(_public(service.get_webhook(db.session(), g.provider)))


@bp.get("/webhook/deliveries")
@api_operation(
    "List webhook deliveries",
    description="The deliveries, newest first, a page at a time (`limit`, 50 by default; "
    "`cursor` from the page before's `next_cursor`): status, attempts, last answer, next "
    "attempt.",
    # Reading needs the admin scope too: deliveries carry the events' bodies and the
    # receiver's answers, and the settings the URL; a key that only runs jobs has no use
    # for them.
    responses={200: DeliveryList},
    query=PageQuery,
    tags=("webhooks",),
    scope=Scope.WEBHOOKS_ADMIN,
)
@require_provider
def list_deliveries() -> Response:
    page = pagination.query()
    rows = service.list_deliveries(
        db.session(), g.provider, page.limit + 1, after=pagination.decode(page.cursor)
    )
    deliveries, more = pagination.split(rows, page.limit)
    last = deliveries[-1] if more else None
    return pagination.page_response(
        DeliveryList(
            deliveries=[service.delivery_view(d) for d in deliveries],
            next_cursor=pagination.encode((last.created_at, last.id)) if last else None,
        )
    )
