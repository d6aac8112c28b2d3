"""Webhooks: providers' settings and the events (written to an outbox in the event's own
transaction); the delivery of one outbox row is `webhooks.delivery`.

Writing a delivery registers its `webhooks.deliver` task on the unit of work, which sends it once
the transaction has committed (`db.publish`); `webhooks.retry_due` sweeps whatever is due, so a
delivery whose task message was lost is still sent."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from consent_service import db
from consent_service.crypto import Envelope, wrapped_key_id
from consent_service.errors import InvalidRequest, NotFound
from consent_service.providers.models import ProviderRef
from consent_service.timeutil import as_utc, new_id, utcnow
from consent_service.vocabulary import (
    ConsentRequestStatus,
    DecisionKind,
    DeliveryStatus,
    JobStatus,
    WebhookEvent,
)
from consent_service.webhooks.models import Webhook, WebhookDelivery
from consent_service.webhooks.schemas import DeliveryPublic, WebhookPublic
from consent_service.webhooks.transport import check_url

if TYPE_CHECKING:  # the event's shape only: webhooks sits below the gate
    from consent_service.gate.models import GateJob

JOB_DECIDED = WebhookEvent.JOB_DECIDED
CONSENT_REVOKED = WebhookEvent.CONSENT_REVOKED
CONSENT_REQUEST_ANSWERED = WebhookEvent.CONSENT_REQUEST_ANSWERED
COMPLAINT_OPENED = WebhookEvent.COMPLAINT_OPENED
COMPLAINT_RESOLVED = WebhookEvent.COMPLAINT_RESOLVED
EVENTS = tuple(WebhookEvent)

SECRET_PREFIX = "whsec_"  # noqa: S105 - a label on generated secrets, not a secret
DELIVER_TASK = "webhooks.deliver"
RETRY_DUE_TASK = "webhooks.retry_due"
MAX_JOBS_PER_EVENT = 500  # a revocation naming more jobs is split into several deliveries


# ---------------------------------------------------------------------------- settings
def webhook_aad(webhook: Webhook) -> bytes:
    return f"webhook-secret:{webhook.id}:{webhook.provider_id}".encode()


def _chosen_events(events: Iterable[str] | None) -> list[str]:
    """The events a webhook wants, as stored: all when not given; never none, never an unknown
    one. The set is `WebhookEvent`, which the API's `WebhookUpdate` and the portal's form also
    offer, so every edge refuses the same names with this rule."""
    if events is None:
        return sorted(EVENTS)
    chosen = sorted({e.strip() for e in events if e.strip()})
    if not chosen or not set(chosen) <= set(EVENTS):
        raise InvalidRequest("Choose events among: %(events)s.", events=", ".join(EVENTS))
    return chosen


def configure(
    session: Session,
    envelope: Envelope,
    provider: ProviderRef,
    url: str,
    *,
    events: Iterable[str] | None = None,
    active: bool = True,
    rotate_secret: bool = False,
    allow_private: bool = False,
) -> tuple[Webhook, str | None]:
    """Create or update the provider's webhook. Returns (webhook, secret): the secret only when
    it is new (first configuration or rotation): it is never shown again."""
    url = check_url(url, allow_private)
    chosen = _chosen_events(events)
    webhook = session.exec(select(Webhook).where(Webhook.provider_id == provider.id)).first()
    created = webhook is None
    if webhook is None:
        webhook = Webhook(
            provider_id=provider.id, url=url, secret_ciphertext=b"", secret_wrapped_key=b""
        )
    webhook.url, webhook.events, webhook.active = url, chosen, active
    webhook.updated_at = utcnow()
    secret = None
    if created or rotate_secret:
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        webhook.secret_ciphertext, webhook.secret_wrapped_key = envelope.seal(
            secret.encode(), webhook_aad(webhook)
        )
        webhook.secret_kek_id = wrapped_key_id(webhook.secret_wrapped_key)
    session.add(webhook)
    session.flush()
    return webhook, secret


def get_webhook(session: Session, provider: ProviderRef) -> Webhook:
    webhook = session.exec(select(Webhook).where(Webhook.provider_id == provider.id)).first()
    if webhook is None:
        raise NotFound("No webhook is configured.")
    return webhook


def webhook_secret(envelope: Envelope, webhook: Webhook) -> str:
    return envelope.open(
        webhook.secret_ciphertext, webhook.secret_wrapped_key, webhook_aad(webhook)
    ).decode()


def webhook_view(webhook: Webhook, secret: str | None = None) -> WebhookPublic:
    """The webhook as its provider reads it; `secret` only when it is new."""
    return WebhookPublic(
        url=webhook.url,
        events=[WebhookEvent(e) for e in webhook.events],
        active=webhook.active,
        created_at=as_utc(webhook.created_at),
        updated_at=as_utc(webhook.updated_at),
        secret=secret,
    )


def delivery_view(d: WebhookDelivery) -> DeliveryPublic:
    """One delivery as its provider reads it (API, portal, CLI); the next attempt only while
    it is pending (otherwise the column holds the end of a lease nobody needs to see)."""
    status = DeliveryStatus(d.status)
    return DeliveryPublic(
        id=d.id,
        event=WebhookEvent(d.event),
        status=status,
        attempts=d.attempts,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        next_attempt_at=(
            as_utc(d.next_attempt_at)
            if d.next_attempt_at and status is DeliveryStatus.PENDING
            else None
        ),
        delivered_at=as_utc(d.delivered_at) if d.delivered_at else None,
        created_at=as_utc(d.created_at),
        job_id=d.job_id,
    )


def list_deliveries(
    session: Session,
    provider: ProviderRef,
    limit: int = 50,
    after: tuple[datetime, str] | None = None,
) -> list[WebhookDelivery]:
    """The provider's deliveries, newest first (then by id, so the order is total): `limit` of
    them, after the (created_at, id) of the last one a page before showed."""
    query = select(WebhookDelivery).where(WebhookDelivery.provider_id == provider.id)
    if after is not None:
        created_at, delivery_id = after
        query = query.where(
            or_(
                col(WebhookDelivery.created_at) < created_at,
                and_(
                    col(WebhookDelivery.created_at) == created_at,
                    col(WebhookDelivery.id) < delivery_id,
                ),
            )
        )
    order = (col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id).desc())
    return list(session.exec(query.order_by(*order).limit(max(1, min(limit, 500)))))


def get_delivery(session: Session, provider: ProviderRef, delivery_id: str) -> WebhookDelivery:
    """One of the provider's deliveries; another provider's id is as unknown as a missing one."""
    delivery = session.get(WebhookDelivery, delivery_id) if len(delivery_id) <= 32 else None
    if delivery is None or delivery.provider_id != provider.id:
        raise NotFound("No such delivery.")
    return delivery


# ---------------------------------------------------------------------------- events
def enqueue(
    session: Session,
    provider_id: str,
    event: WebhookEvent,
    data: dict[str, Any],
    job_id: str | None = None,
) -> WebhookDelivery | None:
    """Write one delivery to the outbox in the caller's transaction, if the provider has an
    active webhook that wants this event. Its delivery task is sent once the transaction has
    committed."""
    webhook = session.exec(
        select(Webhook).where(Webhook.provider_id == provider_id, col(Webhook.active).is_(True))
    ).first()
    if webhook is None or event not in webhook.events:
        return None
    now = utcnow()
    delivery_id = new_id()
    body = {"id": delivery_id, "type": event.value, "created_at": now.isoformat(), "data": data}
    delivery = WebhookDelivery(
        id=delivery_id,
        webhook_id=webhook.id,
        provider_id=provider_id,
        event=event.value,
        job_id=job_id,
        body=json.dumps(body, separators=(",", ":"), sort_keys=True),
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    db.publish(session, DELIVER_TASK, delivery_id)
    return delivery


def job_decided(
    session: Session, job: GateJob, decision: DecisionKind, reasons: list[str]
) -> WebhookDelivery | None:
    """`job.decided`: call in the transaction that records the job's decision."""
    return enqueue(
        session,
        job.provider_id,
        JOB_DECIDED,
        {
            "job_id": job.id,
            "status": JobStatus.DECIDED.value,
            "decision": DecisionKind(decision).value,
            "reasons": list(reasons),
            "operation": job.operation,
        },
        job_id=job.id,
    )


def consent_request_answered(
    session: Session,
    provider_id: str,
    consent_request_id: str,
    status: ConsentRequestStatus,
    *,
    job_id: str | None = None,
    grant_id: str | None = None,
) -> WebhookDelivery | None:
    """`consent_request.answered`: call in the transaction that records the person's answer.
    `status` is the request's new status (`approved`, `declined`, `expired`); `job_id` is the
    job whose finding the request was for, `grant_id` the grant an approval created. When an
    approval re-evaluates the job, the new decision fires its own `job.decided`."""
    return enqueue(
        session,
        provider_id,
        CONSENT_REQUEST_ANSWERED,
        {
            "consent_request_id": consent_request_id,
            "status": ConsentRequestStatus(status).value,
            "job_id": job_id,
            "grant_id": grant_id,
        },
    )
