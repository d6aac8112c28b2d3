"""`consent.revoked` webhooks: the gate hears `consent.service.grant_revoked` (consent sits below
the gate and knows nothing of jobs) and tells each provider whose allowed jobs relied on the
grant which jobs those are. Connected when this module is imported: `create_app` imports it."""

from __future__ import annotations

from sqlmodel import Session, col, select

from consent_service.consent.service import grant_revoked
from consent_service.gate.models import Decision, Finding, GateJob
from consent_service.vocabulary import DecisionKind
from consent_service.webhooks import service as webhooks
from consent_service.webhooks.models import WebhookDelivery


@grant_revoked.connect
def tell_providers(session: Session, *, grant_id: str, version: int) -> list[WebhookDelivery]:
    """In the transaction that writes the revoked version: one outbox row per provider (split
    every `MAX_JOBS_PER_EVENT` jobs) whose allowed jobs relied on the grant, any earlier version."""
    rows = session.exec(
        select(GateJob.provider_id, GateJob.id)
        .join(Finding, col(Finding.job_id) == GateJob.id)
        .join(Decision, col(Decision.job_id) == GateJob.id)
        .where(Finding.grant_id == grant_id, Decision.decision == DecisionKind.ALLOW.value)
        .distinct()
        .order_by(GateJob.provider_id, GateJob.id)
    ).all()
    by_provider: dict[str, list[str]] = {}
    for provider_id, job_id in rows:
        by_provider.setdefault(provider_id, []).append(job_id)
    deliveries = []
    step = webhooks.MAX_JOBS_PER_EVENT
    for provider_id, job_ids in by_provider.items():
        for start in range(0, len(job_ids), step):
            d = webhooks.enqueue(
                session,
                provider_id,
                webhooks.CONSENT_REVOKED,
                {
                    "grant_id": grant_id,
                    "grant_version": version,
                    "job_ids": job_ids[start : start + step],
                },
            )
            if d is not None:
                deliveries.append(d)
    return deliveries
