"""Webhook settings, the outbox rows events write, one delivery attempt and the backoff."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from consent_service import db
from consent_service.crypto import StaticKeys
from consent_service.errors import InvalidRequest
from consent_service.gate.models import GateJob
from consent_service.processes import worker_command
from consent_service.providers.service import create_provider
from consent_service.queues import WEBHOOKS_QUEUE
from consent_service.settings import Settings
from consent_service.tasking import celery_config
from consent_service.timeutil import utcnow
from consent_service.webhooks import delivery, tasks
from consent_service.webhooks import service as webhooks
from consent_service.webhooks.models import WebhookDelivery
from consent_service.webhooks.signature import verify_signature
from consent_service.webhooks.transport import DeliveryError
from tests import factories

AUDIT_KEY = StaticKeys.single(b"k" * 32)
POLICY = delivery.RetryPolicy(max_attempts=3, base_delay=10, max_delay=25)


class ScriptedTransport:
    """Answers each POST with the next scripted status (or raises it); keeps what it got."""

    def __init__(self, *answers):
        self.answers, self.posts = list(answers), []

    def post(self, url, body, headers):
        self.posts.append((url, body, headers))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_backoff_doubles_from_the_base_up_to_the_cap():
    policy = delivery.RetryPolicy(max_attempts=10, base_delay=30, max_delay=3600)
    delays = [delivery.retry_delay(n, policy) for n in range(1, 10)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_the_secret_is_shown_once_stored_encrypted_and_recoverable(session, envelope):
    provider = create_provider(session, "acme")
    hook, secret = webhooks.configure(
        session, envelope, provider, "https://hooks.example.org/in", allow_private=True
    )
    assert secret and secret.startswith("whsec_")
    assert hook.events == sorted(webhooks.EVENTS)
    assert webhooks.webhook_secret(envelope, hook) == secret
    session.commit()
    dump = "\n".join(str(r) for r in session.exec(text("SELECT * FROM webhook")).all())
    assert secret not in dump and secret.encode().hex() not in dump
    again, none = webhooks.configure(
        session,
        envelope,
        provider,
        "https://hooks.example.org/v2",
        events=["job.decided"],
        allow_private=True,
    )
    assert none is None and again.id == hook.id and again.events == ["job.decided"]
    assert webhooks.webhook_secret(envelope, again) == secret  # unchanged unless rotated
    _, rotated = webhooks.configure(
        session,
        envelope,
        provider,
        "https://x.example.org/",
        rotate_secret=True,
        allow_private=True,
    )
    assert rotated and rotated != secret
    assert webhooks.webhook_view(again).secret is None


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ftp://example.org/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "https:///nohost",
        "https://user:pw@example.org/",
        "https://example.org:99999/",
        "https://example.org/#frag",
        "https://example.org/" + "a" * 2000,
    ],
)
def test_urls_must_be_plain_http_or_https(session, envelope, url):
    provider = create_provider(session, "acme")
    with pytest.raises(InvalidRequest):
        webhooks.configure(session, envelope, provider, url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
    ],
)
def test_production_refuses_internal_addresses(session, envelope, url):
    provider = create_provider(session, "acme")
    with pytest.raises(InvalidRequest, match="refused"):
        webhooks.configure(session, envelope, provider, url, allow_private=False)
    # Development allows them (tests run receivers on loopback).
    webhooks.configure(session, envelope, provider, url, allow_private=True)


def test_unknown_events_are_refused(session, envelope):
    provider = create_provider(session, "acme")
    with pytest.raises(InvalidRequest, match="job.decided"):
        webhooks.configure(
            session,
            envelope,
            provider,
            "http://127.0.0.1/",
            events=["job.exploded"],
            allow_private=True,
        )


def _job(session, provider_id: str, decision: str, grant_id: str | None = None) -> GateJob:
    with factories.bound(session):
        job = factories.GateJobFactory(
            provider_id=provider_id, decided=True, decision__decision=decision
        )
        factories.FindingFactory(
            job=job,
            outcome="consented" if decision == "allow" else "not_covered",
            grant_id=grant_id,
            grant_version=1 if grant_id else None,
        )
    return job


def _deliveries_sent_after_commit(session) -> list[str]:
    """The deliveries whose `webhooks.deliver` task the unit of work will send once committed."""
    return [args[0] for name, args in db.registered_tasks(session) if name == webhooks.DELIVER_TASK]


def test_job_decided_is_written_only_for_an_active_subscribed_webhook(session, envelope):
    a, b, c = (create_provider(session, n) for n in ("a", "b", "c"))
    webhooks.configure(session, envelope, a, "http://127.0.0.1/a", allow_private=True)
    webhooks.configure(
        session, envelope, b, "http://127.0.0.1/b", events=["consent.revoked"], allow_private=True
    )
    webhooks.configure(session, envelope, c, "http://127.0.0.1/c", active=False, allow_private=True)
    jobs = [_job(session, p.id, "allow") for p in (a, b, c)]
    written = [webhooks.job_decided(session, j, "allow", ["all_consented"]) for j in jobs]
    assert written[1] is None and written[2] is None
    delivery = written[0]
    assert _deliveries_sent_after_commit(session) == [delivery.id]
    body = json.loads(delivery.body)
    assert body == {
        "id": delivery.id,
        "type": "job.decided",
        "created_at": body["created_at"],
        "data": {
            "job_id": jobs[0].id,
            "status": "decided",
            "decision": "allow",
            "reasons": ["all_consented"],
            "operation": "face_swap",
        },
    }


def test_consent_request_answered_is_ready_for_consent_requests(session, envelope):
    provider = create_provider(session, "acme")
    webhooks.configure(session, envelope, provider, "http://127.0.0.1/", allow_private=True)
    d = webhooks.consent_request_answered(
        session, provider.id, "req1", "approved", job_id="job1", grant_id="g1"
    )
    assert json.loads(d.body)["data"] == {
        "consent_request_id": "req1",
        "status": "approved",
        "job_id": "job1",
        "grant_id": "g1",
    }


@pytest.fixture
def deliver(worker_context):
    """One attempt as the `webhooks.deliver` task makes it: claim, send, record."""
    return tasks.deliver_once


@pytest.fixture
def pending(session, envelope):
    """(delivery id, secret) of a committed job.decided delivery."""
    provider = create_provider(session, "acme")
    _, secret = webhooks.configure(
        session, envelope, provider, "http://127.0.0.1:9/hook", allow_private=True
    )
    d = webhooks.job_decided(session, _job(session, provider.id, "allow"), "allow", [])
    session.commit()
    return d.id, secret


def _row(reopen, delivery_id) -> WebhookDelivery:
    return reopen().get(WebhookDelivery, delivery_id)


def _make_due(engine, delivery_id):
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE webhook_delivery SET next_attempt_at = :t WHERE id = :id"),
            {"t": utcnow() - timedelta(seconds=1), "id": delivery_id},
        )


def test_a_delivery_is_signed_and_posted_once(deliver, engine, envelope, pending, reopen):
    delivery_id, secret = pending
    transport = ScriptedTransport(204)
    assert deliver(delivery_id, envelope, transport, POLICY, 60) == "delivered"
    [(url, body, headers)] = transport.posts
    assert url == "http://127.0.0.1:9/hook"
    assert headers["Consent-Event"] == "job.decided"
    assert headers["Consent-Delivery"] == delivery_id
    verify_signature(secret, headers["Consent-Signature"], body)
    row = _row(reopen, delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 1, 204)
    assert row.delivered_at is not None and row.next_attempt_at is None
    # A duplicate task message sends nothing more.
    assert deliver(delivery_id, envelope, transport, POLICY, 60) == "skipped"
    assert len(transport.posts) == 1


def test_failures_back_off_then_give_up(deliver, engine, envelope, pending, reopen):
    delivery_id, _ = pending
    transport = ScriptedTransport(500, DeliveryError("connection refused"), 302)
    before = utcnow()
    assert deliver(delivery_id, envelope, transport, POLICY, 60) == "pending"
    row = _row(reopen, delivery_id)
    assert (row.attempts, row.last_status_code) == (1, 500)
    assert "500" in row.last_error
    wait = (row.next_attempt_at.replace(tzinfo=None) - before.replace(tzinfo=None)).total_seconds()
    assert 10 <= wait < 12  # the base delay
    # Not due yet: a sweep or duplicate message does not send it early.
    assert delivery.due(reopen(), utcnow()) == []
    assert deliver(delivery_id, envelope, transport, POLICY, 60) == "skipped"

    _make_due(engine, delivery_id)
    assert delivery.due(reopen(), utcnow()) == [delivery_id]
    assert deliver(delivery_id, envelope, transport, POLICY, 60) == "pending"
    row = _row(reopen, delivery_id)
    assert (row.attempts, row.last_status_code, row.last_error) == (2, None, "connection refused")
    wait = (
        row.next_attempt_at.replace(tzinfo=None) - utcnow().replace(tzinfo=None)
    ).total_seconds()
    assert 18 <= wait <= 20  # doubled

    _make_due(engine, delivery_id)  # a redirect is not followed: it is a failure
    assert deliver(delivery_id, envelope, transport, POLICY, 60) == "failed"
    row = _row(reopen, delivery_id)
    assert (row.status, row.attempts, row.last_status_code) == ("failed", 3, 302)
    assert row.next_attempt_at is None
    assert delivery.due(reopen(), utcnow() + timedelta(days=1)) == []


def test_an_attempt_whose_worker_died_is_retried_after_its_lease(engine, envelope, pending, reopen):
    delivery_id, _ = pending
    with engine.begin() as conn:  # claimed by a worker that then died
        conn.execute(
            text("UPDATE webhook_delivery SET attempts = 1, next_attempt_at = :t WHERE id = :id"),
            {"t": utcnow() + timedelta(seconds=60), "id": delivery_id},
        )
    assert delivery.due(reopen(), utcnow()) == []
    assert delivery.due(reopen(), utcnow() + timedelta(seconds=61)) == [delivery_id]


def test_a_disabled_webhook_gets_nothing(deliver, engine, session, envelope, pending, reopen):
    delivery_id, _ = pending
    hook = session.exec(select(webhooks.Webhook)).one()
    hook.active = False
    session.commit()
    transport = ScriptedTransport()
    assert deliver(delivery_id, envelope, transport, POLICY, 60) == "failed"
    assert transport.posts == []
    assert "disabled" in _row(reopen, delivery_id).last_error


def test_one_provider_runs_at_most_its_cap_of_attempts_at_once(
    worker_context, session, envelope, engine, reopen
):
    """A provider whose receiver is slow holds at most `provider_cap` webhook workers: the
    next claim is deferred (not counted, due again shortly) until one of its attempts ends."""
    provider = create_provider(session, "slow")
    webhooks.configure(session, envelope, provider, "http://127.0.0.1:9/hook", allow_private=True)
    ids = [
        webhooks.job_decided(session, _job(session, provider.id, "allow"), "allow", []).id
        for _ in range(3)
    ]
    session.commit()

    def claim(delivery_id):
        with db.unit_of_work() as s:
            return delivery.claim_attempt(s, delivery_id, envelope, 60, provider_cap=2)

    first, second = claim(ids[0]), claim(ids[1])  # both running (sending, not yet recorded)
    assert isinstance(first, delivery.Attempt) and isinstance(second, delivery.Attempt)
    assert claim(ids[2]) == delivery.DEFERRED
    row = _row(reopen, ids[2])
    assert (row.attempts, row.leased_until, row.status) == (0, None, "pending")
    with db.unit_of_work() as s:
        delivery.record_attempt(s, first, delivery.Sent(204, None), POLICY)
    _make_due(engine, ids[2])
    assert isinstance(claim(ids[2]), delivery.Attempt)  # its turn once one attempt ended


def test_the_lease_outlives_the_delivery_task():
    """The retry sweep must never send a delivery again while its attempt may still run: the
    lease is longer than the task's hard time limit, which is longer than the attempt's
    deadline; and deliveries run on their own queue, which every worker argv consumes."""
    settings = Settings(webhook_deadline=20)
    config = celery_config(settings)
    limit = config["task_annotations"][webhooks.DELIVER_TASK]["time_limit"]
    assert settings.webhook_deadline < limit == settings.webhook_task_time_limit
    assert settings.webhook_lease > limit
    assert config["task_routes"][webhooks.DELIVER_TASK] == {"queue": WEBHOOKS_QUEUE}
    argv = worker_command()
    assert WEBHOOKS_QUEUE in argv[argv.index("-Q") + 1].split(",")
