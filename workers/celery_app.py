"""Entry point for `celery -A workers.celery_app worker`: refuses to start without the keys a
worker signs with (consent_service.keys.startup)."""

from celery import Celery

from consent_service.app import create_app
from consent_service.keys.startup import require_worker_keys


def _worker_celery() -> Celery:
    flask_app = create_app()
    require_worker_keys(flask_app.extensions["consent_services"].settings)
    return flask_app.extensions["celery"]


celery = _worker_celery()
