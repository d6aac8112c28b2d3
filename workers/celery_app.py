"""Entry point for `celery -A workers.celery_app worker`."""

from consent_service.app import create_app

celery = create_app().extensions["celery"]
