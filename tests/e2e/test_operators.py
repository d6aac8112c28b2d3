"""The operator's side end to end with the real worker: a face already enrolled by another account
opens a dispute (no second template), an operator resolves it in the console and the worker's
gallery follows; the heartbeat task reaches the health page."""

from __future__ import annotations

import time

import pytest
from sqlmodel import select

from consent_service import db
from consent_service.accounts.service import mark_verified, sign_up
from consent_service.biometrics.models import BiometricTemplate, EnrollmentDispute
from consent_service.mail import read_outbox
from consent_service.operators.models import WorkerHeartbeat
from consent_service.operators.service import add_operator
from consent_service.runtime import services
from consent_service.tasking import publish
from consent_service.vocabulary import Operation
from tests.e2e.conftest import Api
from tests.support import Person, accept_invitation, invitation_path, set_up_two_factor

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"


def _owners(stack) -> list[int]:
    with stack.app.app_context():
        return sorted(t.subject_id for t in db.session().exec(select(BiometricTemplate)))


def _operator(stack) -> Person:
    with stack.app.app_context(), db.unit_of_work() as s:
        mark_verified(sign_up(s, "operator@example.org", PASSWORD))
        _, invitation = add_operator(s, services().audit_key, "operator@example.org")
    person = Person(stack.client())
    response = person.post("/login", {"email": "operator@example.org", "password": PASSWORD})
    assert response.status_code == 302
    accept_invitation(person, invitation_path(stack.app, invitation))
    set_up_two_factor(person)  # operators sign in with a second factor
    return person


def _mails(stack, count: int) -> list[dict]:
    """The outbox once it holds `count` mails (the worker writes them)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mails = read_outbox(stack.settings.mail_outbox_dir)
        if len(mails) >= count:
            return mails
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} mails in the outbox")


def test_a_duplicate_face_is_disputed_and_the_operator_awards_it(stack, photos):
    alice = stack.enroll("alice@example.org", photos["obama.jpg"])  # no language: both
    assert alice.status == "completed", alice.error

    with stack.app.app_context(), db.unit_of_work() as s:  # signed up in Chinese
        mark_verified(sign_up(s, "carol@example.org", PASSWORD, language="zh-CN"))
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

    # The worker's beat task mails the notices, each in its reader's language.
    publish(stack.app, "notices.mail")
    by_address = {m["to"]: m for m in _mails(stack, 2)}
    to_carol, to_alice = by_address["carol@example.org"], by_address["alice@example.org"]
    assert to_carol["language"] == "zh-CN" and "关于您的录入" in to_carol["subject"]
    assert "您录入的人脸与另一个账户的相符" in to_carol["body"]
    assert "another account" not in to_carol["body"]
    assert to_alice["language"] == "zh-CN, en"
    assert "另一个账户试图录入与您相符的人脸" in to_alice["body"]
    assert "Another account tried to enroll a face that matches yours" in to_alice["body"]

    operator = _operator(stack)
    page = f"/operator/disputes/{dispute.id}"
    assert "carol@example.org" in operator.get(page) and "alice@example.org" in operator.get(page)
    response = operator.post(page, {"resolution": "awarded_claimant", "note": "passport seen"})
    assert response.status_code == 302
    assert _owners(stack) == [carol.subject_id]
    to_carol = [m for m in _mails(stack, 4) if m["to"] == "carol@example.org"]
    assert [m["language"] for m in to_carol] == ["zh-CN", "zh-CN"]
    assert any("争议：它现已录入到您的账户。" in m["body"] for m in to_carol)

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
