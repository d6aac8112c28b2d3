"""The receipts' worker path: a grant version registers its receipt's signing, sent only once
the version is committed; the task signs and keeps it once (run twice, it keeps the first); the
sweep sends again the signing of versions still unsigned (a lost task, versions from before
signed receipts), and nothing once all are signed. The container is a stand-in with the
worker's signing keys; the database and the unit of work are real."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from flask import current_app
from sqlmodel import select

from consent_service import db
from consent_service.consent import service as consent
from consent_service.consent.models import ConsentGrant
from consent_service.consent.receipts import SIGN_RECEIPT
from consent_service.crypto import StaticKeys
from consent_service.operators.service import expire_grants
from consent_service.rights import tasks
from consent_service.rights.models import ConsentReceipt
from consent_service.rights.receipts import receipt_content, verify_receipt
from consent_service.settings import Settings
from consent_service.timeutil import utcnow
from consent_service.tokens.service import DecisionSigner, KeyRing, generate_key

KEY = StaticKeys.single(b"k" * 32)


@pytest.fixture
def worker(worker_context, tmp_path):
    ring = KeyRing((generate_key(),))
    settings = Settings(
        consent_service_home=tmp_path,
        public_url="https://consent.example",
        controller_name="Example Ltd",
    )
    current_app.extensions["consent_services"] = SimpleNamespace(
        settings=settings,
        decision_signer=DecisionSigner(ring, "consent-service", timedelta(minutes=15)),
    )
    return SimpleNamespace(sent=worker_context, ring=ring)


def _receipts(s) -> list[ConsentReceipt]:
    return list(s.exec(select(ConsentReceipt).order_by(ConsentReceipt.grant_row_id)))


def test_a_new_version_is_signed_by_the_task_sent_after_its_commit(worker, factories, session):
    grant = factories.ConsentGrantFactory()
    session.commit()
    evidence = consent.Evidence(actor="user:1", identity_method="password-session")
    with db.unit_of_work() as s:
        revoked = consent.revoke(s, KEY, grant.subject_id, grant.grant_id, evidence)
        assert db.registered_tasks(s) == [(SIGN_RECEIPT, (str(revoked.id),))]
        assert worker.sent == []  # nothing is sent before the commit
    assert worker.sent == [(SIGN_RECEIPT, [str(revoked.id)])]

    receipt_id = tasks.sign_receipt(str(revoked.id))
    with db.unit_of_work() as s:
        [kept] = _receipts(s)
    assert kept.receipt_id == receipt_id and kept.kid == worker.ring.keys[0].kid
    content, _ = verify_receipt(kept.jws, worker.ring.public_keys())
    assert content == receipt_content(kept.jws)
    assert content["grant"] == {
        "grant_id": grant.grant_id,
        "version": 2,
        "status": "revoked",
        "refusal": False,
        "purposes": [],
        "guardian": None,
    }
    assert content["piiControllers"][0]["piiControllerUrl"] == "https://consent.example/"

    # Run again (a redelivered message): the receipt kept is the first, unchanged.
    assert tasks.sign_receipt(str(revoked.id)) == receipt_id
    with db.unit_of_work() as s:
        assert [r.jws for r in _receipts(s)] == [kept.jws]
    assert tasks.sign_receipt("999999") is None  # a version that is not there: nothing


def test_expiry_registers_the_expired_versions_receipt(worker, factories, session):
    factories.ConsentGrantFactory(valid_until=utcnow() - timedelta(minutes=1))
    session.commit()
    with db.unit_of_work() as s:
        assert expire_grants(s, KEY, utcnow()) == 1
        [expired] = s.exec(select(ConsentGrant).where(ConsentGrant.status == "expired")).all()
    assert worker.sent == [(SIGN_RECEIPT, [str(expired.id)])]


def test_the_sweep_sends_again_what_is_still_unsigned(worker, factories, session):
    old = factories.ConsentGrantFactory(created_at=utcnow() - timedelta(minutes=10))
    factories.ConsentGrantFactory()  # just made: its own task may still be on its way
    session.commit()

    assert tasks.sweep_receipts() == 1
    assert worker.sent == [(SIGN_RECEIPT, [str(old.id)])]
    tasks.sign_receipt(str(old.id))
    worker.sent.clear()
    assert tasks.sweep_receipts() == 0 and worker.sent == []
