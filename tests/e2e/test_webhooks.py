"""Webhooks end to end: a provider's receiver on loopback checks every signature; the real
worker sends `job.decided` after the decision, retries a receiver that answered 500 (the beat
sweep, with retry delays shortened to a second), and `consent.revoked` names the allowed job."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from consent_service import db
from consent_service.consent import service as consent
from consent_service.processes import beat_command
from consent_service.runtime import services
from consent_service.vocabulary import Operation
from tests.e2e.conftest import Api
from tests.support import FAST_WEBHOOK_RETRIES, Receiver, serving

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def _fast_retries() -> Iterator[None]:
    """Set before the module's stack starts, so its worker (and beat) read them."""
    saved = {k: os.environ.get(k) for k in FAST_WEBHOOK_RETRIES}
    os.environ.update(FAST_WEBHOOK_RETRIES)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def receiver(stack) -> Iterator[Receiver]:
    with serving("/hooks/consent") as rec:
        yield rec


@pytest.fixture(scope="module")
def beat(stack) -> Iterator[subprocess.Popen]:
    """Celery beat beside the stack's worker (the periodic webhook sweep), as deployed."""
    env = {
        **os.environ,
        "CONSENT_SERVICE_HOME": str(stack.settings.home),
        "DATABASE_URL": stack.settings.sqlalchemy_url,
        "BROKER_URL": stack.settings.celery_broker_url,
    }
    log = stack.settings.home / "beat.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            beat_command(stack.settings.home / "beat-schedule"),
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    yield proc
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def world(stack, photos, strangers, receiver, beat):
    """A provider whose webhook points at the receiver (its first job.decided answered 500);
    a person who consents to face swaps; one allowed job and one that needs consent."""
    provider_id, key = stack.provider("Hooked Studio")
    api = Api(stack.client(), key)
    assert api.client.get("/api/v1/webhook", headers=api.headers).status_code == 404
    refused = api.client.put("/api/v1/webhook", json={"url": "ftp://x/"}, headers=api.headers)
    assert refused.status_code == 422, refused.get_json()
    answer = api.client.put("/api/v1/webhook", json={"url": receiver.url}, headers=api.headers)
    assert answer.status_code == 200, answer.get_json()
    receiver.secret = answer.get_json()["secret"]
    shown = api.client.get("/api/v1/webhook", headers=api.headers).get_json()
    assert shown["url"] == receiver.url and "secret" not in shown  # shown once only
    receiver.fail_first.add("job.decided")

    person = stack.enroll("webhook-person@example.org", photos["obama.jpg"])
    assert person.status == "completed", person.error
    grant = stack.grant(person.subject_id, Operation.FACE_SWAP)
    allowed = api.gate(source=[photos["obama2.jpg"]])
    assert allowed["decision"] == "allow", allowed
    # The 500 goes to the first job.decided POST: this job's, before the next job exists (its
    # delivery task and the next job's could otherwise reach the worker in either order).
    receiver.wait_for("job.decided", answered=500, job_id=allowed["id"])
    waiting = api.gate(source=[photos["obama3.jpg"]], target=[strangers[0]])
    assert waiting["decision"] == "needs_consent", waiting
    return {"api": api, "person": person, "grant": grant, "allowed": allowed, "waiting": waiting}


def settled_delivery(api: Api, job_id: str, timeout: float = 60.0) -> dict:
    """The job's delivery in the provider's log once it is no longer pending: the receiver
    records its answer before the worker has read it, let alone recorded it."""
    deadline = time.monotonic() + timeout
    while True:
        log = api.client.get("/api/v1/webhook/deliveries", headers=api.headers).get_json()
        found = [d for d in log["deliveries"] if d["job_id"] == job_id]
        if len(found) == 1 and found[0]["status"] != "pending":
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id}'s delivery not settled in {timeout} s: {found}")
        time.sleep(0.1)


def test_job_decided_is_signed_and_retried_after_a_500(world, receiver):
    job = world["allowed"]
    receiver.wait_for("job.decided", job_id=job["id"])
    first = settled_delivery(world["api"], job["id"])
    assert (first["status"], first["attempts"], first["last_status_code"]) == ("delivered", 2, 200)
    # Read once the worker recorded the delivery: every POST it will ever make of it.
    posts = receiver.posts("job.decided", job_id=job["id"])
    assert [p["answered"] for p in posts] == [500, 200], posts  # the sweep sent it again
    assert all(p["verified"] for p in posts)
    assert {p["delivery"] for p in posts} == {first["id"]}  # the same delivery, retried
    assert posts[0]["body"]["data"] == {
        "job_id": job["id"],
        "status": "decided",
        "decision": "allow",
        "reasons": job["reasons"],
        "operation": "face_swap",
    }
    # The waiting job was announced too (first try).
    (other,) = receiver.wait_for("job.decided", job_id=world["waiting"]["id"])
    assert other["body"]["data"]["decision"] == "needs_consent"


def test_revoking_a_grant_that_allowed_a_job_fires_consent_revoked(stack, world, receiver):
    app = stack.app
    # As the web view and the CLI do: the unit of work commits, then sends the webhook.
    with app.app_context(), db.unit_of_work() as s:
        consent.revoke(
            s,
            services().audit_key,
            world["person"].subject_id,
            world["grant"].grant_id,
            consent.Evidence(actor="test", identity_method="test"),
        )
    (post,) = receiver.wait_for("consent.revoked", grant_id=world["grant"].grant_id)
    assert post["verified"]
    assert post["body"]["data"]["job_ids"] == [world["allowed"]["id"]]  # not the waiting job
    assert post["body"]["data"]["grant_version"] == 2
