"""Entry point for `celery -A workers.celery_app worker`: refuses to start without the keys a
worker signs with (consent_service.keys.startup)."""

from consent_service.app import create_app
from consent_service.keys.startup import require_worker_keys
from consent_service.runtime import services

app = create_app()
with app.app_context():
    require_worker_keys(services().settings)
celery = app.extensions["celery"]
