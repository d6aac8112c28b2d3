"""Celery, the Flask way: one Celery app per Flask app, tasks run inside an app context. Low in
the stack (it names task modules as strings), so `create_app` needs nothing from `workers`."""

from __future__ import annotations

import json
import time
from queue import Empty

from celery import Celery, Task
from celery.schedules import crontab
from flask import Flask, g, has_app_context
from kombu.transport import sqlalchemy as kombu_sqla
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError, OperationalError

from consent_service import db
from consent_service.queues import (
    DEFAULT_QUEUE,
    GALLERY_MERGE_QUEUE,
    MATCHING_QUEUE,
    WEBHOOKS_QUEUE,
)
from consent_service.settings import Settings

EMBEDDED_PREFIX = "sqla+"  # the embedded broker: kombu's SQLAlchemy transport, in a database


class _EmbeddedChannel(kombu_sqla.Channel):
    """kombu's SQLAlchemy channel, safe when several processes start at once (a CLI command
    racing the worker's start): kombu creates its tables and a queue's row on first use, and
    guards that only within one process, so the loser of the race between two processes got
    `IntegrityError` on `INSERT INTO kombu_queue` (or "table already exists"). Here the loser
    reads what the winner created."""

    def _open(self):
        for tries in range(10):
            try:
                return super()._open()
            except (OperationalError, IntegrityError):  # another process is creating the tables
                if tries == 9:
                    raise
                time.sleep(0.05 * (tries + 1))
        raise AssertionError("unreachable")

    def _get_or_create(self, queue):
        try:
            return super()._get_or_create(queue)
        except IntegrityError:  # another process inserted this queue between our read and write
            self.session.rollback()
            return self.session.query(self.queue_cls).filter(self.queue_cls.name == queue).one()


class EmbeddedBroker(kombu_sqla.Transport):
    """The transport of the embedded broker (`sqla+` URLs): kombu's, with `_EmbeddedChannel`.
    Named by `broker_transport` (an import path, which kombu accepts there but not in a URL).

    It polls its tables, and kombu pauses a fixed `polling_interval` (1 s) after every look that
    finds nothing to take. With a prefetch of one, that look also comes back empty while the
    process's own job runs, so each process took its next job up to a second after finishing
    one: bench/e2e_throughput measured 0.15 s of work per face job and about 1 s per job per
    process. Here the pause follows what the worker is doing (`drain_events`): while its jobs
    fill its prefetch it looks every `BUSY_POLL` (no query is made then: kombu asks the database
    only when it may take a job), and while its queues are empty the pause doubles up to
    `IDLE_POLL`, so an idle worker reads its queues a few times a second (about 1% of a core)
    and a new job waits at most that long."""

    Channel = _EmbeddedChannel
    BUSY_POLL = 0.02
    IDLE_POLL = 0.25
    polling_interval = BUSY_POLL
    _pause = BUSY_POLL

    def drain_events(self, connection, timeout=None):
        """kombu's loop (`virtual.Transport.drain_events`), its pause adapted as above."""
        start = time.monotonic()
        while True:
            try:
                self.cycle.get(self._deliver, timeout=timeout)
            except Empty:
                waited = time.monotonic() - start
                if timeout is not None and waited >= timeout:
                    raise TimeoutError() from None
                busy = any(c._consumers and not c.qos.can_consume() for c in self.channels)
                self._pause = self.BUSY_POLL if busy else min(self.IDLE_POLL, self._pause * 2)
                time.sleep(self._pause if timeout is None else min(self._pause, timeout - waited))
            else:
                self._pause = self.BUSY_POLL
                return


def celery_config(settings: Settings) -> dict:
    broker = settings.celery_broker_url
    config: dict = {
        "broker_url": broker,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        # A job is acknowledged only once done; a worker that dies mid-job gives it back.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_time_limit,
        "task_soft_time_limit": max(1, settings.task_time_limit - 10),
        "task_default_queue": DEFAULT_QUEUE,
        "task_routes": {
            "gate.*": {"queue": MATCHING_QUEUE},
            "biometrics.*": {"queue": MATCHING_QUEUE},
            "webhooks.deliver": {"queue": WEBHOOKS_QUEUE},
            # The gallery shards' chords (biometrics/shards.py): each search names its shard's
            # queue when sent; the merge, and the SQL result backend's polling for the end of a
            # chord, run on the shard workers, never on the matching workers that wait for them.
            "gallery.merge_shards": {"queue": GALLERY_MERGE_QUEUE},
            "celery.chord_unlock": {"queue": GALLERY_MERGE_QUEUE},
        },
        # One delivery attempt lives at most this long (its lease is longer: settings).
        "task_annotations": {
            "webhooks.deliver": {
                "time_limit": settings.webhook_task_time_limit,
                "soft_time_limit": settings.webhook_task_time_limit - 5,
            }
        },
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        # JSON logs (LOG_FORMAT) write to the process's stderr: Celery's redirect of stdout and
        # stderr into its own logger would send each line back to the handler that wrote it.
        "worker_redirect_stdouts": not settings.logs_as_json,
        # Periodic tasks, run by `celery beat` (or `worker -B`, as `consent-service serve` does).
        "beat_schedule": {
            "webhooks.retry_due": {
                "task": "webhooks.retry_due",
                "schedule": settings.webhook_sweep_interval,
            },
            "sweep.stale_work": {
                "task": "sweep.stale_work",
                "schedule": settings.outbox_sweep_after,
            },
            "receipts.sweep": {
                "task": "receipts.sweep",
                "schedule": settings.outbox_sweep_after,
            },
            "grants.expire": {"task": "grants.expire", "schedule": settings.grant_expiry_interval},
            "media.purge": {"task": "media.purge", "schedule": settings.media_purge_interval},
            "live_sessions.sweep": {
                "task": "live_sessions.sweep",
                "schedule": settings.outbox_sweep_after,
            },
            "retention.purge": {
                "task": "retention.purge",
                "schedule": settings.retention_purge_interval,
            },
            "consent_requests.expire": {
                "task": "consent_requests.expire",
                "schedule": settings.consent_request_sweep_interval,
            },
            "health.heartbeat": {
                "task": "health.heartbeat",
                "schedule": settings.heartbeat_interval,
            },
            "notices.mail": {"task": "notices.mail", "schedule": settings.notice_mail_interval},
            # Once a day at that hour (UTC, Celery's default timezone), not every N seconds.
            "notices.digest": {
                "task": "notices.digest",
                "schedule": crontab(minute=0, hour=settings.notice_digest_hour),
            },
            "audit.checkpoint": {
                "task": "audit.checkpoint",
                "schedule": settings.audit_checkpoint_interval,
            },
        },
    }
    backend = settings.result_backend_url
    if backend:
        # Only the shards' tasks keep results (`ignore_result=False`), read at once by the job
        # that waits for them and then forgotten; whatever is left expires within the hour.
        config["result_backend"] = backend
        config["result_expires"] = 3600
        config["result_chord_retry_interval"] = 0.1  # an SQL backend's chord_unlock polling
    if broker.startswith(EMBEDDED_PREFIX):
        config["broker_url"] = broker.removeprefix(EMBEDDED_PREFIX)  # the database's own URL
        config["broker_transport"] = f"{__name__}:EmbeddedBroker"
    if broker.startswith(("redis", "rediss")):
        # Unacknowledged jobs come back after this long: above the time limit, so none runs twice
        # at once only because it is slow.
        config["broker_transport_options"] = {"visibility_timeout": settings.task_time_limit * 2}
    return config


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    class FlaskTask(Task):
        """Each task is one unit of work: its session is finished (committed, then the tasks and
        side effects it registered are done) when the task returns, rolled back if it raises."""

        def __call__(self, *args, **kwargs):
            if has_app_context():  # an eager call shares the caller's context and unit of work
                return self.run(*args, **kwargs)
            with app.app_context():
                result = self.run(*args, **kwargs)
                if "db_session" in g:
                    db.finish(g.db_session)
                return result

    # Typed as the plain Celery app its callers see (its task class is this function's own).
    celery_app: Celery = Celery(
        app.name,
        task_cls=FlaskTask,
        # Each capability owns its tasks; the worker imports these modules at start.
        include=[
            "consent_service.gate.tasks",
            "consent_service.biometrics.tasks",
            "consent_service.webhooks.tasks",
            "consent_service.operators.tasks",
            "consent_service.consent_requests.tasks",
            "consent_service.audit.tasks",
            "consent_service.retention.tasks",
            "consent_service.rights.tasks",
        ],
    )
    celery_app.config_from_object(celery_config(settings))
    app.extensions["celery"] = celery_app
    # The unit of work's boundary sends the tasks registered during it, by name.
    app.extensions["task_sender"] = lambda name, args: celery_app.send_task(name, args=args)
    return celery_app


def publish(app: Flask, task_name: str, *args: str) -> None:
    """Send a task by name (the web never imports task code). Call only after the commit that
    created the task's row."""
    app.extensions["celery"].send_task(task_name, args=list(args))


def queue_depths(broker_url: str, queues: list[str]) -> dict[str, int | None]:
    """Messages waiting per queue: Redis LLEN, or the SQLite broker's visible kombu messages;
    None where the broker cannot tell (the operators' health page, the stale-work sweep)."""
    try:
        if broker_url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(broker_url, socket_timeout=2)
            try:
                return {q: int(client.llen(q)) for q in queues}
            finally:
                client.close()
        if broker_url.startswith("sqla+"):
            engine = create_engine(broker_url.removeprefix("sqla+"))
            try:
                with engine.connect() as conn:
                    rows = conn.execute(
                        text(
                            "SELECT q.name, COUNT(m.id) FROM kombu_queue q LEFT JOIN "
                            "kombu_message m ON m.queue_id = q.id AND m.visible "
                            "GROUP BY q.name"
                        )
                    ).all()
            finally:
                engine.dispose()
            counts = {name: int(n) for name, n in rows}
            return {q: counts.get(q, 0) for q in queues}
    except Exception:  # noqa: BLE001 - a broker we cannot read is shown as "unknown", not a 500
        return dict.fromkeys(queues)
    return dict.fromkeys(queues)


def queue_consumers(celery_app: Celery, timeout: float) -> dict[str, list[str]] | None:
    """The workers listening on each queue, by their Celery names, as they answer a broadcast
    (`celery inspect active_queues`) within `timeout` seconds: alive and consuming now, not only
    once. A queue no worker answered for is absent. None where the broker has no broadcast (the
    embedded one: its workers run without remote control) or cannot be reached."""
    try:
        with celery_app.connection_for_write() as connection:
            if not connection.supports_exchange_type("fanout"):
                return None
            connection.ensure_connection(max_retries=1, interval_start=0)  # a broker down: at once
            inspect = celery_app.control.inspect(timeout=timeout, connection=connection)
            replies = inspect.active_queues() or {}
    except Exception:  # noqa: BLE001 - a broker we cannot ask is shown as "unknown", not a 500
        return None
    consumers: dict[str, list[str]] = {}
    for worker, queues in replies.items():
        for queue in queues or ():
            consumers.setdefault(queue["name"], []).append(worker)
    return {queue: sorted(workers) for queue, workers in consumers.items()}


def queue_backlog(broker_url: str, queue: str) -> int | None:
    """The messages of `queue` the broker still holds: waiting, or handed to a worker and not
    yet acknowledged (Redis keeps those in its `unacked` hash, each with its routing key). None
    where the broker cannot tell. What the stale-work sweep compares with the work that has not
    started, to tell a backlog from lost messages."""
    waiting = queue_depths(broker_url, [queue])[queue]
    if waiting is None or not broker_url.startswith(("redis://", "rediss://")):
        return waiting
    import redis

    try:
        client = redis.Redis.from_url(broker_url, socket_timeout=2)
        try:
            # kombu's entries: [message, exchange, routing key]; bounded by the workers' prefetch.
            held = [json.loads(v) for v in client.hvals("unacked")]
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - cannot tell: the sweep publishes as if lost
        return None
    return waiting + sum(1 for entry in held if len(entry) > 2 and entry[2] == queue)
