"""Faults the gate must survive: a worker process killed in the middle of a job."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import select

from consent_service import db
from consent_service.gate.models import Decision, GateJob
from consent_service.vocabulary import Operation
from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e


def _pool_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children]


def test_worker_child_killed_mid_job_is_redelivered_and_decided_once(stack, photos, tmp_path):
    alice = stack.enroll("kate@example.org", photos["obama.jpg"])
    assert alice.status == "completed", alice.error
    stack.grant(alice.subject_id, Operation.FACE_SWAP)
    _, key = stack.provider("Fault Studio")
    api = Api(stack.client(), key)
    # A large photo keeps the worker busy long enough to be caught in the act.
    big = tmp_path / "big.jpg"
    img = Image.open(photos["t1.jpg"])
    img.resize((img.width * 3, img.height * 3)).save(big, quality=95)

    job_id = api.submit(target=[big, photos["obama3.jpg"]]).get_json()["id"]
    deadline = time.monotonic() + 60
    killed = None
    with stack.app.app_context():
        while killed is None and time.monotonic() < deadline:
            s = db.session()
            job = s.get(GateJob, job_id)
            s.expire_all()
            if job.status == "processing":
                (child,) = _pool_children(stack.worker.pid)
                os.kill(child, signal.SIGKILL)
                killed = child
            elif job.status == "decided":
                pytest.fail("the job finished before the test could kill its worker process")
            time.sleep(0.005)
    assert killed, "the job never started processing"

    job = api.wait(job_id)
    assert job["status"] == "decided"
    assert job["attempts"] >= 2  # the first attempt died with its process and was counted
    assert job["decision"] == "needs_consent"  # strangers from t1.jpg, Kate consented
    with stack.app.app_context():
        assert len(db.session().exec(select(Decision).where(Decision.job_id == job_id)).all()) == 1
    assert stack.worker.poll() is None  # the worker replaced its dead process and lives on


def test_job_whose_message_was_lost_is_found_by_the_sweep(stack, photos):
    from datetime import timedelta

    from consent_service.gate.service import Upload, submit_job
    from consent_service.providers.models import Provider
    from consent_service.runtime import services
    from consent_service.tasking import publish
    from consent_service.vocabulary import Operation, Role

    _, key = stack.provider("Sweep Studio")
    with stack.app.app_context():
        sender = stack.app.extensions["task_sender"]
        stack.app.extensions["task_sender"] = lambda name, args: None  # the broker is down
        try:
            with db.unit_of_work() as s:
                provider = s.exec(select(Provider).where(Provider.name == "Sweep Studio")).one()
                job, _ = submit_job(
                    s,
                    services().media_store,
                    provider,
                    Operation.FACE_SWAP,
                    [Upload(Role.SOURCE, "obama3.jpg", photos["obama3.jpg"].read_bytes())],
                )
                # Committed but never published, and waiting for a while.
                job.updated_at -= timedelta(seconds=stack.settings.outbox_sweep_after + 5)
                job.published_at = job.updated_at
        finally:
            stack.app.extensions["task_sender"] = sender
        job_id = job.id
    api = Api(stack.client(), key)
    assert api.job(job_id).get_json()["status"] == "queued"
    publish(stack.app, "sweep.stale_work")  # what beat sends every OUTBOX_SWEEP_AFTER seconds
    assert api.wait(job_id)["status"] == "decided"
