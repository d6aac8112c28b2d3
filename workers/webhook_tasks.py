"""Webhook tasks: send one delivery; sweep the deliveries whose (re)try is due."""

from __future__ import annotations

from celery import shared_task

from consent_service import db
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from consent_service.webhooks import service as webhooks


@shared_task(name=webhooks.DELIVER_TASK, ignore_result=True)
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


@shared_task(name=webhooks.RETRY_DUE_TASK, ignore_result=True)
def webhooks_retry_due() -> int:
    session = db.session()
    due = webhooks.due(session, utcnow())
    for delivery_id in due:  # sent when the task's unit of work finishes
        db.publish(session, webhooks.DELIVER_TASK, delivery_id)
    return len(due)
