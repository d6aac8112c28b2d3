"""Webhook tasks: send one delivery; sweep the deliveries whose (re)try is due."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from consent_service import db
from consent_service.services import services
from consent_service.timeutil import utcnow
from consent_service.webhooks import service as webhooks
from consent_service.webhooks.outbox import DELIVER_TASK, RETRY_DUE_TASK, publish_deliveries


@shared_task(name=DELIVER_TASK, ignore_result=True)
def webhooks_deliver(delivery_id: str) -> str:
    svc = services()
    settings = svc.settings
    return webhooks.deliver(
        db.engine(),
        delivery_id,
        svc.envelope,
        svc.webhook_transport,
        webhooks.RetryPolicy.from_settings(settings),
        # An attempt that has not reported back by then is presumed dead and tried again.
        lease=max(60.0, 4 * settings.webhook_timeout),
    )


@shared_task(name=RETRY_DUE_TASK, ignore_result=True)
def webhooks_retry_due() -> int:
    due = webhooks.due(db.session(), utcnow())
    publish_deliveries(current_app, due)
    return len(due)
