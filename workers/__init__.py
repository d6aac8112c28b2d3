"""The Celery entry point (`celery -A workers.celery_app worker`); the Celery app itself is built
by `create_app` (`consent_service.tasking`), each capability's tasks in `<capability>/tasks.py`."""
