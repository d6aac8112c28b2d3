"""The argv of the service's long-running processes (a Celery worker, Celery beat, the production
web): one place for `consent-service serve|worker|beat`, the demo, the end-to-end tests and the
benches."""

from __future__ import annotations

import sys
from pathlib import Path

from consent_service.queues import ALL_QUEUES, shard_worker_queues


def _celery(*args: str) -> list[str]:
    """`celery -A workers.celery_app ARGS` with this interpreter, logging at INFO."""
    return [sys.executable, "-m", "celery", "-A", "workers.celery_app", *args, "--loglevel", "INFO"]


def worker_command(
    concurrency: int = 1,
    extra: tuple[str, ...] = (),
    beat_schedule: Path | None = None,
    queues: tuple[str, ...] = ALL_QUEUES,
) -> list[str]:
    """The `celery worker` argv, consuming `queues` (all of them by default: one worker does
    everything; a deployment runs the webhooks queue on workers of its own, so a slow receiver
    never holds a matching process); with `beat_schedule`, the worker also runs beat (periodic
    tasks such as webhook retries): right for one worker, not for several."""
    beat = ("--beat", "--schedule", str(beat_schedule)) if beat_schedule else ()
    return [
        *_celery("worker", "-Q", ",".join(queues), "--concurrency", str(concurrency)),
        *beat,
        *extra,
    ]


def shard_worker_command(shard: int, concurrency: int = 1) -> list[str]:
    """The `celery worker` argv of one gallery shard's worker (biometrics/shards.py): that
    shard's queues and the merges. Run it with GALLERY_SHARD set to `shard` (`consent-service
    worker --shard` does); each process holds its own copy of the shard, hence one by default."""
    return worker_command(
        concurrency, ("--hostname", f"gallery-shard{shard}@%h"), queues=shard_worker_queues(shard)
    )


def beat_command(schedule: Path) -> list[str]:
    """The `celery beat` argv (exactly one beat per deployment; its state file at `schedule`)."""
    return _celery("beat", "--schedule", str(schedule))


def web_command(host: str, port: int, workers: int) -> list[str]:
    """docker-compose's (and the Dockerfile's) web process with this interpreter: granian serving
    `create_web_app()` over WSGI on `host`:`port`, `workers` processes of 4 threads each that run
    the app, HTTP and keep-alive handled by granian's own (Rust) threads, so they never wait on
    the GIL a request holds; a worker that dies is started again, and a worker that cannot build
    the app (a placeholder secret) stops the server with status 1."""
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "wsgi",
        "--no-ws",
        "--factory",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--blocking-threads",
        "4",
        "--respawn-failed-workers",
        "--workers-kill-timeout",
        "30",
        "consent_service.app:create_web_app",
    ]
