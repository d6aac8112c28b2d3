"""The delivery of one outbox row, in three named steps like the gate's: `claim_attempt` (a short
transaction that counts and leases the attempt), `send` (signed, outside any transaction),
`record_attempt` (a short transaction: delivered, retried with exponential backoff, or failed).
`consent_service.webhooks.tasks` composes them; `due` finds what the retry sweep sends again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, update
from sqlmodel import Session, col, select

from consent_service.crypto import Envelope
from consent_service.settings import Settings
from consent_service.timeutil import utcnow
from consent_service.vocabulary import DeliveryStatus
from consent_service.webhooks import signature
from consent_service.webhooks.models import Webhook, WebhookDelivery
from consent_service.webhooks.service import webhook_secret
from consent_service.webhooks.transport import DeliveryError, WebhookTransport

PENDING = DeliveryStatus.PENDING.value
DELIVERED = DeliveryStatus.DELIVERED.value
FAILED = DeliveryStatus.FAILED.value
SKIPPED = "skipped"  # an attempt not due (a duplicate task message): nothing sent
DEFERRED = "deferred"  # the provider has its cap of attempts running: tried again shortly
DEFER_DELAY = timedelta(seconds=1)  # then due again: the retry sweep sends it


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_delay: float  # seconds before the second attempt; doubled for each one after
    max_delay: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            settings.webhook_max_attempts,
            settings.webhook_retry_base,
            settings.webhook_retry_max_delay,
        )


def retry_delay(attempts: int, policy: RetryPolicy) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: base, 2×base, 4×base… capped."""
    return min(policy.max_delay, policy.base_delay * 2 ** max(0, attempts - 1))


def due(session: Session, now: datetime, limit: int = 500) -> list[str]:
    """Pending deliveries whose next attempt (or expired lease) is due."""
    return list(
        session.exec(
            select(WebhookDelivery.id)
            .where(
                col(WebhookDelivery.status) == PENDING, col(WebhookDelivery.next_attempt_at) <= now
            )
            .order_by(col(WebhookDelivery.next_attempt_at))
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class Attempt:
    """One claimed attempt: what to send, where, signed with which secret."""

    delivery_id: str
    attempts: int
    url: str
    secret: str
    event: str
    body: bytes


@dataclass(frozen=True)
class Sent:
    """What the receiver answered: its status code, or why nothing (or a failure) came back."""

    status_code: int | None
    error: str | None


def claim_attempt(
    session: Session,
    delivery_id: str,
    envelope: Envelope,
    lease: float,
    provider_cap: int | None = None,
) -> Attempt | str:
    """Step one, in its own short transaction: count and lease the attempt before anything is
    sent, so duplicate and concurrent task deliveries send once; a worker that dies mid-attempt
    leaves a lease that expires and the sweep tries again (the lease outlives the task's time
    limit, so no attempt is sent again while the first may still run). At most `provider_cap`
    attempts to one provider run at once: claims to one provider are serialized on its webhook
    row, and one over the cap is not counted but `deferred` (due again shortly, sent by the
    retry sweep). Returns the attempt, or the status of a delivery that is not due (`skipped`),
    deferred, or whose webhook was disabled (`failed`)."""
    now = utcnow()
    found = session.get(WebhookDelivery, delivery_id)
    if found is None:
        return SKIPPED
    if provider_cap is not None:  # one claimer per provider at a time (SQLite: the UPDATE below)
        session.exec(select(Webhook.id).where(Webhook.id == found.webhook_id).with_for_update())
    claimed = session.exec(
        update(WebhookDelivery)
        .where(
            col(WebhookDelivery.id) == delivery_id,
            col(WebhookDelivery.status) == PENDING,
            or_(
                col(WebhookDelivery.next_attempt_at).is_(None),
                col(WebhookDelivery.next_attempt_at) <= now,
            ),
        )
        .values(
            attempts=WebhookDelivery.attempts + 1,
            next_attempt_at=now + timedelta(seconds=lease),
            leased_until=now + timedelta(seconds=lease),
        )
        .execution_options(synchronize_session=False)  # re-read below
    )
    if claimed.rowcount != 1:
        return SKIPPED
    delivery = session.get(WebhookDelivery, delivery_id, populate_existing=True)
    assert delivery is not None  # claimed just now, in this transaction
    if provider_cap is not None and running(session, delivery.provider_id, now) > provider_cap:
        delivery.attempts -= 1  # not an attempt: its turn comes
        delivery.next_attempt_at, delivery.leased_until = now + DEFER_DELAY, None
        return DEFERRED
    webhook = session.get(Webhook, delivery.webhook_id)
    if webhook is None or not webhook.active:
        delivery.status, delivery.next_attempt_at = FAILED, None
        delivery.leased_until = None
        delivery.last_error = "The webhook was disabled before this delivery was sent."
        return FAILED
    return Attempt(
        delivery_id,
        delivery.attempts,
        webhook.url,
        webhook_secret(envelope, webhook),
        delivery.event,
        delivery.body.encode(),
    )


def running(session: Session, provider_id: str, now: datetime) -> int:
    """How many attempts to this provider hold a lease now (this transaction's claim too)."""
    return session.exec(
        select(func.count())
        .select_from(WebhookDelivery)
        .where(
            WebhookDelivery.provider_id == provider_id,
            WebhookDelivery.status == PENDING,
            col(WebhookDelivery.leased_until) > now,
        )
    ).one()


def send(attempt: Attempt, transport: WebhookTransport) -> Sent:
    """Step two, outside any transaction: sign and post the body once."""
    headers = {
        signature.SIGNATURE_HEADER: signature.sign(attempt.secret, attempt.body),
        "Consent-Event": attempt.event,
        "Consent-Delivery": attempt.delivery_id,
    }
    try:
        status_code = transport.post(attempt.url, attempt.body, headers)
    except DeliveryError as exc:
        return Sent(None, str(exc))
    if not 200 <= status_code < 300:
        return Sent(status_code, f"the receiver answered HTTP {status_code}")
    return Sent(status_code, None)


def record_attempt(session: Session, attempt: Attempt, sent: Sent, policy: RetryPolicy) -> str:
    """Step three, in its own short transaction: delivered, due again after the backoff, or
    failed for good; unless a later attempt took over meanwhile."""
    now = utcnow()
    delivery = session.get(WebhookDelivery, attempt.delivery_id)
    if delivery is None or delivery.attempts != attempt.attempts or delivery.status != PENDING:
        return delivery.status if delivery else "missing"  # a later attempt took over
    delivery.last_status_code, delivery.last_error = sent.status_code, (sent.error or None)
    delivery.leased_until = None
    if sent.error is None:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = DELIVERED, now, None
    elif attempt.attempts >= policy.max_attempts:
        delivery.status, delivery.next_attempt_at = FAILED, None
    else:
        delivery.next_attempt_at = now + timedelta(seconds=retry_delay(attempt.attempts, policy))
    if delivery.last_error:
        delivery.last_error = delivery.last_error[:500]
    return delivery.status
