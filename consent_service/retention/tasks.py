"""Beat's `retention.purge`: every class of data past its period destroyed, each audited with its
counts. Registered by the Celery app (`consent_service.tasking.celery_init_app`)."""

from __future__ import annotations

from celery import shared_task

from consent_service import db
from consent_service.retention import service as retention
from consent_service.runtime import services
from consent_service.timeutil import utcnow


@shared_task(name="retention.purge", ignore_result=True)
def retention_purge() -> dict[str, dict[str, int]]:
    svc = services()
    with db.unit_of_work() as s:
        return retention.purge(s, svc.audit_key, svc.settings, utcnow(), svc.evidence_store)
