"""The Celery app's broker: the embedded broker survives two processes starting at once, and
its worker looks for its next job soon after one ends without querying all the time when idle."""

from __future__ import annotations

import json
import time

import pytest
import redis
from celery import Celery
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.transport.sqlalchemy import Transport
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Query

from consent_service import tasking
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


@pytest.fixture
def pauses(monkeypatch) -> list[float]:
    """The pauses the embedded broker's loop makes, each really slept."""
    slept: list[float] = []
    sleep = time.sleep

    def record(seconds: float) -> None:
        slept.append(seconds)
        sleep(seconds)

    monkeypatch.setattr(tasking.time, "sleep", record)
    return slept


def _consume(connection, queue: Queue, received: list) -> Consumer:
    channel = connection.default_channel
    channel.basic_qos(0, 1, False)  # a prefetch of one, as the worker's
    consumer = Consumer(channel, [queue], callbacks=[lambda body, message: received.append(body)])
    consumer.consume()
    return consumer


def test_an_idle_worker_looks_less_and_less_often(broker_url, pauses):
    queue = Queue("matching", Exchange("matching"), "matching")
    with Connection(broker_url, transport=EmbeddedBroker) as conn:
        _consume(conn, queue, [])
        with pytest.raises(TimeoutError):
            conn.drain_events(timeout=2.0)
    steps = [round(p, 2) for p in pauses[:5]]
    assert steps == [0.04, 0.08, 0.16, 0.25, 0.25]  # doubling up to IDLE_POLL
    assert sum(pauses) <= 2.0  # never past the timeout


def test_a_busy_worker_looks_again_soon_and_a_delivery_resets_the_pause(broker_url, pauses):
    queue = Queue("matching", Exchange("matching"), "matching")
    with Connection(broker_url, transport=EmbeddedBroker) as conn:
        producer = Producer(conn.default_channel)
        for job in ("first", "second"):
            producer.publish(job, exchange=queue.exchange, routing_key="matching", declare=[queue])
        received: list = []
        _consume(conn, queue, received)
        conn.drain_events(timeout=1.0)
        assert received == ["first"]
        assert conn.transport._pause == EmbeddedBroker.BUSY_POLL
        # The first job is not acknowledged: the prefetch is full, so the worker waits for it,
        # looking every BUSY_POLL (kombu asks the database nothing meanwhile).
        with pytest.raises(TimeoutError):
            conn.drain_events(timeout=0.3)
        assert received == ["first"] and pauses
        assert set(pauses[:-1]) == {EmbeddedBroker.BUSY_POLL}
