"""The broker's queues: the worker's Celery app routes to them (`workers`), the operator console
and the CLI name them (queue depths, `consent-service worker -Q`)."""

MATCHING_QUEUE = "matching"  # gate jobs and enrollments: the face and voice models
DEFAULT_QUEUE = "default"  # everything else (webhooks, housekeeping)
