"""Webhook tasks: one delivery attempt through its three steps (claim, send, record), and the
sweep of the deliveries whose (re)try is due. Registered by the Celery app
(`consent_service.tasking.celery_init_app`)."""

from __future__ import annotations

from celery import shared_task

from consent_service import db
from consent_service.crypto import Envelope
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from consent_service.webhooks import delivery
from consent_service.webhooks import service as webhooks
from consent_service.webhooks.transport import WebhookTransport


@shared_task(name=webhooks.DELIVER_TASK, ignore_result=True)
def deliver(delivery_id: str) -> str:
    svc = services()
    settings = svc.settings
    return deliver_once(
        delivery_id,
        svc.envelope,
        svc.webhook_transport,
        delivery.RetryPolicy.from_settings(settings),
        # An attempt that has not reported back by then is presumed dead and tried again:
        # longer than this task's time limit, so never while it may still run.
        lease=settings.webhook_lease,
        provider_cap=settings.webhook_provider_concurrency,
    )


def deliver_once(
    delivery_id: str,
    envelope: Envelope,
    transport: WebhookTransport,
    policy: delivery.RetryPolicy,
    lease: float,
    provider_cap: int | None = None,
) -> str:
    """One attempt, safe under duplicate and concurrent task deliveries: claimed (counted and
    leased) and committed before anything is sent, so only one runs."""
    with db.unit_of_work() as s:
        attempt = delivery.claim_attempt(s, delivery_id, envelope, lease, provider_cap)
    if isinstance(attempt, str):
        return attempt
    sent = delivery.send(attempt, transport)
    with db.unit_of_work() as s:
        return delivery.record_attempt(s, attempt, sent, policy)


@shared_task(name=webhooks.RETRY_DUE_TASK, ignore_result=True)
def retry_due() -> int:
    with db.unit_of_work() as s:
        due = delivery.due(s, utcnow())
        for delivery_id in due:  # sent when the unit of work finishes
            db.publish(s, webhooks.DELIVER_TASK, delivery_id)
    return len(due)
