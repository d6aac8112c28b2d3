"""Periodic housekeeping (Celery beat): grant expiry, media purge past retention, heartbeat,
and the mailing of people's notices. Registered by the Celery app
(`consent_service.tasking.celery_init_app`)."""

from __future__ import annotations

import socket
from datetime import timedelta

from celery import shared_task

from consent_service import db
from consent_service.notices import service as notices
from consent_service.operators import service as operators
from consent_service.runtime import services
from consent_service.timeutil import utcnow


@shared_task(name="grants.expire", ignore_result=True)
def grants_expire() -> int:
    with db.unit_of_work() as s:
        return operators.expire_grants(s, services().audit_key, utcnow())


@shared_task(name="media.purge", ignore_result=True)
def media_purge() -> int:
    svc = services()
    store = svc.media_store
    cutoff = utcnow() - timedelta(seconds=svc.settings.media_retention)
    with db.unit_of_work() as s:  # the media go once their destruction is recorded
        purged = operators.purge_media(s, svc.audit_key, store, store.stale(cutoff))
    return len(purged)


@shared_task(name="health.heartbeat", ignore_result=True)
def health_heartbeat() -> None:
    with db.unit_of_work() as s:
        operators.heartbeat(s, socket.gethostname(), utcnow())


@shared_task(name="notices.mail", ignore_result=True)
def notices_mail() -> int:
    """Mail the people's notices not mailed yet (dispute opened or resolved)."""
    svc = services()
    with db.unit_of_work() as s:
        return notices.mail_notices(s, svc.mailer, svc.settings.mail_from)
