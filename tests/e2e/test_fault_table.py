"""The faults of bench/faults.py, smaller, in CI: each against a real stack of its own (its own
redis-server, real workers with the faults planted by bench/fault_worker.py), the sweep's
period shortened to 2 s. Each is bounded: the bench's own timeouts, and the sizes here (20 to
50 jobs). `python bench/faults.py` prints the same rows at the issue's sizes."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.e2e,
    # kombu's own SQLAlchemy models are never used here, but PyAV, webrtcvad (pkg_resources)
    # and the worker's imports warn as they do in the stack fixture.
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

_spec = importlib.util.spec_from_file_location(
    "bench_faults", Path(__file__).parents[2] / "bench" / "faults.py"
)
assert _spec and _spec.loader
faults = importlib.util.module_from_spec(_spec)
sys.modules["bench_faults"] = faults
_spec.loader.exec_module(faults)

SMALL = argparse.Namespace(backlog=50, redis_backlog=20, enrollment_seconds=20.0, latency_jobs=3)
LIMIT = 240  # seconds any one fault may take here, workers' start included


def _run(name: str, backend: str):
    started = time.monotonic()
    row = faults.run(name, backend, SMALL)
    print(faults.table([row]))
    assert row.ok, row
    assert time.monotonic() - started < LIMIT
    return row


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_same_job_delivered_five_times_at_once_is_decided_once(backend):
    _run("duplicates", backend)


def test_poison_media_end_failed_after_three_attempts_and_the_queue_drains():
    _run("poison", "sqlite")


def test_the_whole_worker_killed_mid_job_another_decides_it_once():
    _run("worker", "postgres")


def test_a_backlog_lost_by_the_broker_is_published_again_none_lost():
    _run("redis", "sqlite")


def test_a_slow_enrollment_is_not_failed_by_the_sweep():
    _run("enrollment", "sqlite")


def test_a_backlog_costs_at_most_two_messages_per_job():
    _run("backlog", "sqlite")


def test_a_slow_receiver_does_not_slow_the_gate():
    _run("receiver", "sqlite")


def test_broker_down_at_submission_answers_503_and_keeps_the_job():
    _run("outage", "postgres")
