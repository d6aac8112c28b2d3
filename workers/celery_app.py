"""Entry point for `celery -A workers.celery_app worker`: refuses to start without the keys a
worker signs with (consent_service.keys.startup). A gallery shard's worker (`consent-service
worker --shard K`, GALLERY_SHARD set) signs nothing: like the web, it holds the public keys only."""

from celery import Celery

from consent_service.app import create_app
from consent_service.keys.startup import require_worker_keys
from consent_service.settings import Settings


def _worker_celery() -> Celery:
    settings = Settings()
    signs = settings.gallery_shard is None
    flask_app = create_app(settings, signing=signs)
    if signs:
        require_worker_keys(settings)
    return flask_app.extensions["celery"]


celery = _worker_celery()
