"""The metrics collector against a real SQLite database: jobs submitted and decided by the gate's
pipeline (a stand-in face finder), webhook deliveries attempted by the delivery task with a
scripted transport, templates enrolled, and the exact samples a scrape reports."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.registry import CollectorRegistry
from sqlmodel import Session, create_engine, select

from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.biometrics.gallery import Gallery, seal_snapshot
from consent_service.biometrics.models import BiometricTemplate
from consent_service.biometrics.service import seal_template
from consent_service.consent import service as consent
from consent_service.crypto import StaticKeys
from consent_service.gate import pipeline, tasks
from consent_service.gate.decisions import Signing
from consent_service.gate.models import DecisionRevision, GateJob
from consent_service.gate.service import Upload, submit_job
from consent_service.keyring import Pseudonyms
from consent_service.migrate import upgrade
from consent_service.observability import metrics
from consent_service.providers.models import Provider
from consent_service.providers.service import create_provider
from consent_service.queues import ALL_QUEUES
from consent_service.timeutil import utcnow
from consent_service.tokens.service import DecisionSigner, KeyRing, generate_key
from consent_service.vocabulary import Operation, Role
from consent_service.webhooks import delivery
from consent_service.webhooks import service as webhooks
from consent_service.webhooks import tasks as webhook_tasks
from tests import factories as row_factories
from tests.fakes import vector

AUDIT_KEY = StaticKeys.single(b"a" * 32)
POLICY = delivery.RetryPolicy(max_attempts=3, base_delay=10, max_delay=25)
ALICE, BOB, STRANGER = 1, 2, 9
WINDOW = 3600.0


class ScriptedTransport:
    def __init__(self, *answers: int):
        self.answers = list(answers)

    def post(self, url, body, headers):
        return self.answers.pop(0)


@pytest.fixture(autouse=True)
def units(worker_context):
    return worker_context


@pytest.fixture
def signing(envelope) -> Signing:
    signer = DecisionSigner(KeyRing((generate_key(),)), "consent-service", timedelta(days=1))
    return Signing(AUDIT_KEY, signer, Pseudonyms.single(b"p" * 32), envelope, timedelta(days=7))


@pytest.fixture
def provider_id(envelope) -> str:
    with db.unit_of_work() as s:
        provider = create_provider(s, "acme")
        webhooks.configure(s, envelope, provider, "http://127.0.0.1:9/hook", allow_private=True)
        return provider.id


def _enroll(envelope, faces, face: int) -> int:
    with db.unit_of_work() as s:
        user = User(email=f"p{face}@example.org", password_hash="-", email_verified_at=utcnow())
        s.add(user)
        s.flush()
        subject = Subject(user_id=user.id)
        s.add(subject)
        s.flush()
        template = BiometricTemplate(
            subject_id=subject.id,
            modality="face",
            model=faces.model_name,
            ciphertext=b"",
            wrapped_key=b"",
        )
        seal_template(envelope, template, vector(face))
        s.add(template)
        assert subject.id is not None
        return subject.id


def _grant(subject_id: int) -> None:
    with db.unit_of_work() as s:
        consent.grant(
            s,
            AUDIT_KEY,
            subject_id,
            consent.GrantRequest(
                operations=[Operation.FACE_SWAP],
                roles=[Role.SOURCE, Role.TARGET],
                all_providers=True,
                provider_ids=[],
            ),
            consent.Evidence(actor="test", identity_method="test"),
        )


def _submit(store, provider_id: str, picture: bytes) -> str:
    with db.unit_of_work() as s:
        provider = s.get(Provider, provider_id)
        job, _ = submit_job(
            s, store, provider, Operation.FACE_SWAP, [Upload(Role.SOURCE, "p.png", picture)]
        )
        return job.id


def _decide(job_id, store, matching, signing, submitted_before: float) -> None:
    """Decide the job, then say it was submitted `submitted_before` seconds before its decision
    (so the latency it shows is exactly that)."""
    delivered = pipeline.Delivery(f"m-{job_id}", timedelta(minutes=5))
    assert tasks.decide(job_id, delivered, store, matching, None, signing, 3) == "decided"
    with db.unit_of_work() as s:
        decided_at = s.exec(
            select(DecisionRevision.created_at).where(DecisionRevision.job_id == job_id)
        ).one()
        s.get(GateJob, job_id).created_at = decided_at - timedelta(seconds=submitted_before)


def _delivery_of(job_id: str) -> str:
    with db.unit_of_work() as s:
        return s.exec(
            select(webhooks.WebhookDelivery.id).where(webhooks.WebhookDelivery.job_id == job_id)
        ).one()


def _make_due(delivery_id: str) -> None:
    with db.unit_of_work() as s:
        s.get(webhooks.WebhookDelivery, delivery_id).next_attempt_at = utcnow() - timedelta(
            seconds=1
        )


def _scrape(backlog=lambda queue: None, gallery_dir=None, now=None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)

    def take() -> metrics.Snapshot:
        with db.unit_of_work() as s:
            return metrics.snapshot(s, now or utcnow(), WINDOW, backlog, gallery_dir=gallery_dir)

    registry.register(metrics.ConsentServiceCollector(take))
    return registry


@pytest.fixture
def decided(envelope, faces, store, matching, signing, provider_id, tmp_path):
    """Five jobs: one allowed, one needing two people's consent, one denied (no face), one
    decided two hours ago (outside the window), one still queued; their deliveries attempted."""
    alice, bob = _enroll(envelope, faces, ALICE), _enroll(envelope, faces, BOB)
    _grant(alice)
    allowed = _submit(store, provider_id, faces.picture(vector(ALICE)))
    _decide(allowed, store, matching, signing, submitted_before=0.3)
    two_people = _submit(store, provider_id, faces.picture(vector(BOB), vector(STRANGER)))
    _decide(two_people, store, matching, signing, submitted_before=4)
    nobody = _submit(store, provider_id, faces.picture())
    _decide(nobody, store, matching, signing, submitted_before=45)
    old = _submit(store, provider_id, faces.picture(vector(ALICE)))
    _decide(old, store, matching, signing, submitted_before=1)
    with db.unit_of_work() as s:
        revision = s.exec(select(DecisionRevision).where(DecisionRevision.job_id == old)).one()
        revision.created_at = utcnow() - timedelta(hours=2)
    _submit(store, provider_id, faces.picture(vector(BOB)))  # queued: no worker took it

    # allowed: delivered at the second attempt; two_people: given up after three failures.
    first = _delivery_of(allowed)
    assert (
        webhook_tasks.deliver_once(first, envelope, ScriptedTransport(500), POLICY, 60) == "pending"
    )
    _make_due(first)
    assert (
        webhook_tasks.deliver_once(first, envelope, ScriptedTransport(204), POLICY, 60)
        == "delivered"
    )
    second = _delivery_of(two_people)
    for answer, status in ((502, "pending"), (500, "pending"), (404, "failed")):
        _make_due(second)
        got = webhook_tasks.deliver_once(second, envelope, ScriptedTransport(answer), POLICY, 60)
        assert got == status
    return alice, bob


def test_a_scrape_counts_jobs_decisions_reasons_and_latency(decided):
    value = _scrape().get_sample_value
    for status, n in {"queued": 1, "processing": 0, "decided": 4, "failed": 0}.items():
        assert value("consent_gate_jobs", {"status": status}) == n
    # The window holds three first decisions; the one of two hours ago is not among them.
    for decision, n in {"allow": 1, "needs_consent": 1, "deny": 1}.items():
        assert value("consent_gate_decisions", {"decision": decision}) == n
    reasons = {
        ("allow", "all_consented"): 1,
        ("needs_consent", "not_covered"): 1,  # Bob: enrolled, no grant
        ("needs_consent", "unenrolled"): 1,  # the stranger beside him
        ("deny", "no_face_found"): 1,
    }
    for (decision, reason), n in reasons.items():
        assert value("consent_gate_decision_reasons", {"decision": decision, "reason": reason}) == n
    assert (
        value("consent_gate_decision_reasons", {"decision": "deny", "reason": "unenrolled"}) is None
    )

    name = "consent_gate_decision_latency_seconds"
    buckets = {"0.5": 1, "1": 1, "2": 1, "5": 2, "10": 2, "30": 2, "60": 3, "600": 3, "+Inf": 3}
    for le, n in buckets.items():
        assert value(f"{name}_bucket", {"le": le}) == n, le
    assert value(f"{name}_gcount") == 3
    assert value(f"{name}_gsum") == pytest.approx(0.3 + 4 + 45, abs=0.01)


def test_a_scrape_counts_webhook_failures_and_the_gallery(decided):
    value = _scrape().get_sample_value
    assert value("consent_webhook_deliveries", {"status": "delivered"}) == 1
    assert value("consent_webhook_deliveries", {"status": "failed"}) == 1
    assert value("consent_webhook_deliveries", {"status": "pending"}) == 2  # not attempted yet
    assert value("consent_webhook_failed_attempts") == 1 + 3
    model = {"modality": "face", "model": "fake-faces"}
    assert value("consent_gallery_templates", model) == 2
    assert value("consent_gallery_subjects", model) == 2
    assert value("consent_gallery_version", {"modality": "face"}) == 2  # two templates added


def test_queue_depth_per_queue_and_none_where_the_broker_cannot_tell(decided):
    depths = {"matching": 7, "webhooks": 0, "default": None}
    value = _scrape(backlog=depths.get).get_sample_value
    assert value("consent_queue_depth", {"queue": "matching"}) == 7
    assert value("consent_queue_depth", {"queue": "webhooks"}) == 0
    assert value("consent_queue_depth", {"queue": "default"}) is None


def test_a_snapshot_behind_the_gallery_shows_its_lag(decided, tmp_path, envelope):
    folder = tmp_path / "gallery"
    seal_snapshot(Gallery(seq=1), b"k" * 32, folder / "face-abc.gallery", {"modality": "face"})
    (folder / "voice-torn.gallery").write_bytes(b"half a file")  # being replaced: skipped
    value = _scrape(gallery_dir=folder).get_sample_value
    assert (
        value("consent_gallery_snapshot_lag", {"modality": "face", "snapshot": "face-abc.gallery"})
        == 1
    )
    assert (
        value(
            "consent_gallery_snapshot_lag", {"modality": "voice", "snapshot": "voice-torn.gallery"}
        )
        is None
    )


def test_an_empty_service_reports_zeros_not_gaps(worker_context):
    value = _scrape().get_sample_value
    assert value("consent_gate_jobs", {"status": "queued"}) == 0
    assert value("consent_gate_decisions", {"decision": "allow"}) == 0
    assert value("consent_gate_decision_latency_seconds_bucket", {"le": "+Inf"}) == 0
    assert value("consent_webhook_failed_attempts") == 0


@pytest.mark.postgres
def test_the_same_queries_on_postgresql(postgres_database):
    """The latency's seconds and the reasons' JSON text are dialect-specific SQL."""
    with postgres_database() as url:
        upgrade(url)
        engine = create_engine(url)
        try:
            now = utcnow()
            with Session(engine) as s, row_factories.bound(s):
                for waited, decision, reasons in (
                    (0.25, "allow", ["all_consented"]),
                    (7.5, "needs_consent", ["not_covered", "unenrolled"]),
                    (7.5, "needs_consent", ["unenrolled", "not_covered"]),
                ):
                    job = row_factories.GateJobFactory(
                        status="decided", created_at=now - timedelta(seconds=waited)
                    )
                    s.add(
                        DecisionRevision(
                            job_id=job.id,
                            revision=1,
                            decision=decision,
                            reasons=reasons,
                            created_at=now,
                        )
                    )
                s.commit()
                got = metrics.snapshot(s, now, WINDOW, lambda queue: 3)
        finally:
            engine.dispose()
    assert got.decisions == {"allow": 1, "needs_consent": 2, "deny": 0}
    assert got.reasons == {
        ("allow", "all_consented"): 1,
        ("needs_consent", "not_covered"): 2,
        ("needs_consent", "unenrolled"): 2,
    }
    assert dict(got.latency.buckets)[0.5] == 1 and dict(got.latency.buckets)[10] == 3
    assert got.latency.total == pytest.approx(15.25)
    assert got.jobs_by_status["decided"] == 3 and got.queue_depth == {q: 3 for q in ALL_QUEUES}
