"""Periodic housekeeping (Celery beat): grant expiry, media purge past retention, heartbeat,
the mailing of people's notices and their daily digest of attempts. Registered by the Celery app
(`consent_service.tasking.celery_init_app`)."""

from __future__ import annotations

import socket
from datetime import timedelta

from celery import shared_task
from flask import current_app

from consent_service import db
from consent_service.notices import digest
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


@shared_task(name="notices.digest", ignore_result=True)
def notices_digest() -> int:
    """Mail each account its daily digest of attempt notices, one account per unit of work, so
    a crash or a failed send touches that account's notices only (notices/digest.py)."""
    svc = services()
    now = utcnow()
    with db.unit_of_work() as s:
        accounts = digest.due(s, now)
    mailed = 0
    for user_id in accounts:
        with db.unit_of_work() as s:
            mailed += digest.mail_digest(
                s,
                svc.mailer,
                svc.settings.mail_from,
                user_id,
                current_app.config["SECRET_KEY"],
                svc.settings.public_url,
                now,
            )
    return mailed
