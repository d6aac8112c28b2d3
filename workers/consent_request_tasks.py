"""Periodic consent-request work: expire requests past their time, purge kept faces."""

from __future__ import annotations

from celery import shared_task

from consent_service import db
from consent_service.consent_requests.service import expire_due
from consent_service.runtime import services


@shared_task(name="consent_requests.expire", ignore_result=True)
def consent_requests_expire() -> int:
    session = db.session()
    expired = expire_due(session, services().audit_key)
    session.commit()
    return expired
