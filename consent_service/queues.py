"""The broker's queues: the worker's Celery app routes to them (`workers`), the operator console
and the CLI name them (queue depths, `consent-service worker -Q`)."""

MATCHING_QUEUE = "matching"  # gate jobs and enrollments: the face and voice models
WEBHOOKS_QUEUE = "webhooks"  # webhook deliveries: a slow receiver never delays the gate
DEFAULT_QUEUE = "default"  # everything else (housekeeping, sweeps)
ALL_QUEUES = (MATCHING_QUEUE, WEBHOOKS_QUEUE, DEFAULT_QUEUE)
