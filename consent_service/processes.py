"""The argv of the service's long-running processes (a Celery worker, Celery beat): one place for
`consent-service serve|worker|beat`, the demo and the end-to-end tests."""

from __future__ import annotations

import sys
from pathlib import Path

from consent_service.queues import DEFAULT_QUEUE, MATCHING_QUEUE


def _celery(*args: str) -> list[str]:
    """`celery -A workers.celery_app ARGS` with this interpreter, logging at INFO."""
    return [sys.executable, "-m", "celery", "-A", "workers.celery_app", *args, "--loglevel", "INFO"]


def worker_command(
    concurrency: int = 1, extra: tuple[str, ...] = (), beat_schedule: Path | None = None
) -> list[str]:
    """The `celery worker` argv; with `beat_schedule`, the worker also runs beat (periodic
    tasks such as webhook retries): right for one worker, not for several."""
    beat = ("--beat", "--schedule", str(beat_schedule)) if beat_schedule else ()
    return [
        *_celery(
            "worker", "-Q", f"{MATCHING_QUEUE},{DEFAULT_QUEUE}", "--concurrency", str(concurrency)
        ),
        *beat,
        *extra,
    ]


def beat_command(schedule: Path) -> list[str]:
    """The `celery beat` argv (exactly one beat per deployment; its state file at `schedule`)."""
    return _celery("beat", "--schedule", str(schedule))
