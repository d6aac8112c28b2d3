"""Queue depths as the health page reads them, from a real SQLite broker (kombu's SQLAlchemy
transport) and from a broker that cannot tell."""

from __future__ import annotations

import pytest
from celery import Celery

from consent_service.operators.service import queue_depths


# kombu's own SQLAlchemy models (the embedded broker) use a loader SQLAlchemy 2.1 deprecates.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_sqlite_broker_counts_waiting_messages(tmp_path):
    url = f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
    assert queue_depths(url, ["matching"]) == {"matching": None}  # no broker tables yet
    app = Celery("depth", broker=url)
    try:
        for _ in range(3):
            app.send_task("gate.process_job", args=["x"], queue="matching")
        app.send_task("sweep.stale_work", queue="default")
    finally:
        app.close()
    assert queue_depths(url, ["matching", "default", "other"]) == {
        "matching": 3,
        "default": 1,
        "other": 0,
    }


def test_a_broker_that_cannot_tell_is_unknown():
    assert queue_depths("memory://", ["matching"]) == {"matching": None}
