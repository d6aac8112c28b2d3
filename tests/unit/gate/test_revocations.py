"""Revoking a grant tells each provider whose allowed jobs relied on it: consent sends
`grant_revoked`, the gate's receiver writes the `consent.revoked` outbox rows."""

from __future__ import annotations

import json

from sqlmodel import select

from consent_service import db
from consent_service.consent import service as consent
from consent_service.crypto import StaticKeys
from consent_service.gate import revocations
from consent_service.gate.models import Decision, Finding, GateJob
from consent_service.providers.service import create_provider
from consent_service.vocabulary import Operation, Role
from consent_service.webhooks import service as webhooks
from consent_service.webhooks.models import WebhookDelivery

AUDIT_KEY = StaticKeys.single(b"k" * 32)


def test_the_gate_hears_revocations():
    assert revocations.tell_providers in consent.grant_revoked.receivers_for(None)


def _job(session, provider_id: str, decision: str, grant_id: str | None = None) -> GateJob:
    job = GateJob(provider_id=provider_id, operation="face_swap", status="decided")
    session.add(job)
    session.flush()
    session.add(Decision(job_id=job.id, decision=decision, reasons=[]))
    session.add(
        Finding(
            job_id=job.id,
            media_position=0,
            role="source",
            outcome="consented" if decision == "allow" else "not_covered",
            grant_id=grant_id,
            grant_version=1 if grant_id else None,
        )
    )
    session.flush()
    return job


def _deliveries_sent_after_commit(session) -> list[str]:
    """The deliveries whose `webhooks.deliver` task the unit of work will send once committed."""
    return [args[0] for name, args in db.registered_tasks(session) if name == webhooks.DELIVER_TASK]


def test_revocation_names_each_providers_allowed_jobs_that_relied_on_the_grant(
    session, envelope, make_subject
):
    a, b, quiet = (create_provider(session, n) for n in ("a", "b", "quiet"))
    for p in (a, b):
        webhooks.configure(session, envelope, p, f"http://127.0.0.1/{p.name}", allow_private=True)
    subject = make_subject()
    grant = consent.grant(
        session,
        AUDIT_KEY,
        subject.id,
        consent.GrantRequest([Operation.FACE_SWAP], [Role.SOURCE], True, []),
        consent.Evidence(actor="test", identity_method="test"),
    )
    a1, a2 = (
        _job(session, a.id, "allow", grant.grant_id),
        _job(session, a.id, "allow", grant.grant_id),
    )
    _job(session, a.id, "needs_consent", grant.grant_id)  # not allowed: not named
    _job(session, a.id, "allow", "another-grant")  # relied on another grant
    b1 = _job(session, b.id, "allow", grant.grant_id)
    _job(session, quiet.id, "allow", grant.grant_id)  # no webhook: nothing written
    before = len(_deliveries_sent_after_commit(session))

    consent.revoke(session, AUDIT_KEY, subject.id, grant.grant_id, consent.Evidence("test", "test"))
    session.commit()
    rows = session.exec(select(WebhookDelivery).where(WebhookDelivery.event == "consent.revoked"))
    named = {r.provider_id: json.loads(r.body)["data"] for r in rows}
    assert named == {
        a.id: {"grant_id": grant.grant_id, "grant_version": 2, "job_ids": sorted([a1.id, a2.id])},
        b.id: {"grant_id": grant.grant_id, "grant_version": 2, "job_ids": [b1.id]},
    }
    assert len(_deliveries_sent_after_commit(session)) == before + 2
    # Revoking again changes nothing and tells nobody again.
    consent.revoke(session, AUDIT_KEY, subject.id, grant.grant_id, consent.Evidence("test", "test"))
    assert len(_deliveries_sent_after_commit(session)) == before + 2
