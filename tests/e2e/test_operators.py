"""The operator's side end to end with the real worker: a face already enrolled by another account
opens a dispute (no second template), an operator resolves it in the console and the worker's
gallery follows; the heartbeat task reaches the health page."""

from __future__ import annotations

import time

import pytest
from sqlmodel import select

from consent_service import db
from consent_service.accounts.service import sign_up
from consent_service.biometrics.models import BiometricTemplate
from consent_service.operators.models import EnrollmentDispute, WorkerHeartbeat
from consent_service.operators.service import add_operator
from consent_service.services import services
from consent_service.vocabulary import Operation
from tests.e2e.conftest import Api
from tests.support import Person
from workers import publish

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"


def _owners(stack) -> list[int]:
    with stack.app.app_context():
        return sorted(t.subject_id for t in db.session().exec(select(BiometricTemplate)))


def _operator(stack) -> Person:
    with stack.app.app_context(), db.unit_of_work() as s:
        sign_up(s, "operator@example.org", PASSWORD)
        add_operator(s, services().audit_key, "operator@example.org")
    person = Person(stack.client())
    response = person.post("/login", {"email": "operator@example.org", "password": PASSWORD})
    assert response.status_code == 302
    return person


def test_a_duplicate_face_is_disputed_and_the_operator_awards_it(stack, photos):
    alice = stack.enroll("alice@example.org", photos["obama.jpg"])
    assert alice.status == "completed", alice.error

    carol = stack.enroll("carol@example.org", photos["obama2.jpg"])
    assert carol.status == "disputed" and "already enrolled" in carol.error
    assert _owners(stack) == [alice.subject_id]  # no second template of that face
    assert [p for p in stack.settings.media_dir.glob("*") if p.is_file()] == []
    again = stack.enroll("carol@example.org", photos["obama3.jpg"])
    assert again.status == "failed" and "dispute" in again.error  # not while one is open
    assert _owners(stack) == [alice.subject_id]
    with stack.app.app_context():
        (dispute,) = db.session().exec(select(EnrollmentDispute)).all()
    assert (dispute.claimant_subject_id, dispute.holder_subject_id) == (
        carol.subject_id,
        alice.subject_id,
    )

    operator = _operator(stack)
    page = f"/operator/disputes/{dispute.id}"
    assert "carol@example.org" in operator.get(page) and "alice@example.org" in operator.get(page)
    response = operator.post(page, {"resolution": "awarded_claimant", "note": "passport seen"})
    assert response.status_code == 302
    assert _owners(stack) == [carol.subject_id]

    # The worker's gallery moved with it: Obama's face is Carol's now, and her grant decides.
    stack.grant(carol.subject_id, Operation.FACE_SWAP)
    _, key = stack.provider("Dispute Studio")
    job = Api(stack.client(), key).gate(source=[photos["obama3.jpg"]])
    assert job["decision"] == "allow", job

    publish(stack.app, "health.heartbeat")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with stack.app.app_context():
            if db.session().exec(select(WorkerHeartbeat)).first():
                break
        time.sleep(0.2)
    health = operator.get("/operator/health")
    assert "Last heartbeat" in health
    assert "unknown" not in health  # Redis tells its queue depths
