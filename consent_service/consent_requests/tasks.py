"""Periodic consent-request work: expire requests past their time, purge kept faces.
Registered by the Celery app (`consent_service.tasking.celery_init_app`)."""

from __future__ import annotations

from celery import shared_task

from consent_service import db
from consent_service.consent_requests.service import expire_due
from consent_service.runtime import services


@shared_task(name="consent_requests.expire", ignore_result=True)
def expire() -> int:
    with db.unit_of_work() as s:
        return expire_due(s, services().audit_key)
