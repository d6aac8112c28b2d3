"""The Celery app's broker: the embedded broker survives two processes starting at once."""

from __future__ import annotations

import json
import time

import pytest
import redis
from celery import Celery
from kombu import Connection
from kombu.transport.sqlalchemy import Transport
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Query

from consent_service.settings import Settings
from consent_service.tasking import (
    EmbeddedBroker,
    celery_config,
    queue_backlog,
    queue_consumers,
)
from tests.support import redis_database

# kombu's own SQLAlchemy models (the embedded broker) use a loader SQLAlchemy 2.1 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")


def test_the_embedded_broker_uses_the_safe_transport(tmp_path):
    config = celery_config(Settings(consent_service_home=tmp_path))
    assert config["broker_url"] == f"sqlite:///{tmp_path / 'broker.sqlite'}"
    app = Celery("t")
    app.config_from_object(config)
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, EmbeddedBroker)
    redis = celery_config(Settings(consent_service_home=tmp_path, broker_url="redis://x:6379/0"))
    assert redis["broker_url"] == "redis://x:6379/0" and "broker_transport" not in redis


@pytest.fixture
def broker_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'broker.sqlite'}"


def _lose_the_race(monkeypatch) -> None:
    """This process reads "no such queue" twice (before and under its lock), as when another
    process inserts the queue's row between this one's read and its insert."""
    real_first, misses = Query.first, [2]

    def first(self):
        if misses[0]:
            misses[0] -= 1
            return None
        return real_first(self)

    monkeypatch.setattr(Query, "first", first)


def test_a_queue_created_by_another_process_meanwhile_is_used_not_an_error(broker_url, monkeypatch):
    with Connection(broker_url, transport=EmbeddedBroker) as worker:  # the worker declares it
        worker.default_channel._new_queue("matching")
        with Connection(broker_url, transport=EmbeddedBroker) as cli:  # the CLI, racing it
            channel = cli.default_channel
            _lose_the_race(monkeypatch)
            channel._put("matching", {"body": "job"})  # kombu alone: IntegrityError here
            monkeypatch.undo()
            assert worker.default_channel._get("matching") == {"body": "job"}


def test_kombus_own_channel_loses_that_race(broker_url, monkeypatch):
    """What the safe channel fixes (if kombu ever fixes it, this test says so)."""
    with Connection(broker_url, transport=Transport) as worker:
        worker.default_channel._new_queue("matching")
        with Connection(broker_url, transport=Transport) as cli:
            channel = cli.default_channel
            _lose_the_race(monkeypatch)
            with pytest.raises(IntegrityError):
                channel._put("matching", {"body": "job"})


def test_the_backlog_counts_messages_handed_to_a_worker_and_not_yet_acknowledged():
    """A message a worker has taken but not acknowledged is not lost: the sweep must count it
    (Redis keeps it in `unacked`), or one busy worker makes every queued job look lost."""
    with redis_database() as url:
        client = redis.Redis.from_url(url)
        try:
            client.lpush("matching", "a", "b")
            client.hset("unacked", "tag1", json.dumps([{"body": "c"}, "", "matching"]))
            # The running sweep's own message (another queue) is not the matching queue's.
            client.hset("unacked", "tag2", json.dumps([{"body": "sweep"}, "", "default"]))
            assert queue_backlog(url, "matching") == 3
        finally:
            client.close()
    assert queue_backlog("memory://", "matching") is None


def test_who_listens_is_unknown_without_a_broadcast_or_a_broker(tmp_path):
    """The embedded broker has no broadcast (its workers run without remote control), and a
    broker that is down is not waited for: both answer None ("unknown"), never an error."""
    embedded = Celery("t")
    embedded.config_from_object(celery_config(Settings(consent_service_home=tmp_path)))
    assert queue_consumers(embedded, 1.0) is None
    started = time.monotonic()
    assert queue_consumers(Celery("t", broker="redis://127.0.0.1:1/0"), 1.0) is None
    assert time.monotonic() - started < 1.0
