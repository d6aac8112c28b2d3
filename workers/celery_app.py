"""Entry point for `celery -A workers.celery_app worker`: refuses to start without the keys a
worker signs with (consent_service.keys.startup). A gallery shard's worker (`consent-service
worker --shard K`, GALLERY_SHARD set) signs nothing: like the web, it holds the public keys only.
Each of a prefork worker's processes runs torch (voices) and BLAS (the gallery) with its share of
the cores' threads."""

from typing import Protocol

from celery import Celery, signals
from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool
from threadpoolctl import threadpool_limits

from consent_service.app import create_app
from consent_service.biometrics.voices import share_cores
from consent_service.keys.startup import require_worker_keys
from consent_service.settings import Settings, usable_cores


def _worker_celery() -> Celery:
    settings = Settings()
    signs = settings.gallery_shard is None
    flask_app = create_app(settings, signing=signs)
    if signs:
        require_worker_keys(settings)
    return flask_app.extensions["celery"]


class _Worker(Protocol):
    """What `worker_processes` reads of a Celery `WorkController` (its stubs omit both)."""

    pool_cls: type | str  # the pool's class, or its alias ("prefork", "solo", "threads")
    concurrency: int | str  # "auto" until Celery resolves it, after `worker_init`


def worker_processes(worker: _Worker) -> int:
    """The processes a worker embeds in at once: its concurrency for the prefork pool (an
    unresolved `auto` is one a core), one for the pools that run tasks in this process."""
    if not issubclass(get_implementation(worker.pool_cls), PreforkPool):
        return 1
    return worker.concurrency if isinstance(worker.concurrency, int) else usable_cores()


@signals.worker_init.connect
def _share_the_cores(sender: _Worker, **_: object) -> None:
    # In the parent, before the pool forks: every process it forks inherits the share. numpy's
    # OpenBLAS is loaded by now; its pool is capped at once (torch's when it loads).
    threadpool_limits(share_cores(worker_processes(sender)), user_api="blas")


celery = _worker_celery()
