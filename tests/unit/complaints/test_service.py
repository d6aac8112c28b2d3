"""The complaints service as plain functions: filing checks its input and what it names (a
decision token verified with the public keys, a token digest, a job id), seals the evidence and
tells the provider concerned; the operator's transitions follow the state machine, each audited;
the clocks; the provider answers only its own complaints; the mails speak the complainant's
language."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from flask_babel import force_locale
from sqlmodel import select

from consent_service.audit.models import AuditEvent
from consent_service.audit.service import verify
from consent_service.complaints import service
from consent_service.complaints.service import Clock, ComplaintSpec, Evidence, Limits
from consent_service.crypto import StaticKeys
from consent_service.errors import Conflict, InvalidRequest, NotFound
from consent_service.gate.models import DecisionRevision
from consent_service.timeutil import utcnow
from consent_service.tokens.service import DecisionSigner, KeyRing, generate_key
from consent_service.webhooks.models import Webhook, WebhookDelivery

KEY = StaticKeys.single(b"k" * 32)
LIMITS = Limits(ack_hours=48, resolve_days=15)
RING = KeyRing((generate_key(),))
SIGNER = DecisionSigner(RING, "consent-service", timedelta(minutes=15))
MAX = 1_000_000
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def _spec(**kw) -> ComplaintSpec:
    return ComplaintSpec(
        **{
            "kind": "edited_without_consent",
            "description": "A video of my face on someone else's body.",
            "email": "Ann@Example.org",
            "language": "zh-CN",
            "location": "https://video.example/v/1",
            **kw,
        }
    )


def _file(session, store, spec=None, evidence=None, now=None):
    return service.file_complaint(
        session,
        KEY,
        store,
        RING.public_keys(),
        LIMITS,
        spec or _spec(),
        evidence,
        evidence_max_bytes=MAX,
        now=now,
    )


def _hook(session, provider):
    session.add(
        Webhook(
            provider_id=provider.id,
            url="https://p.example/h",
            events=["complaint.opened", "complaint.resolved"],
            secret_ciphertext=b"",
            secret_wrapped_key=b"",
        )
    )
    session.flush()


def _deliveries(session, event):
    return [
        json.loads(d.body)["data"]
        for d in session.exec(select(WebhookDelivery).where(WebhookDelivery.event == event))
    ]


def _events(session):
    return [e.event_type for e in session.exec(select(AuditEvent).order_by(AuditEvent.seq))]


def test_a_complaint_naming_nothing_is_filed_with_its_clocks_and_sealed_evidence(session, store):
    now = utcnow()
    c, secret = _file(session, store, evidence=Evidence(PNG, "shot.png"), now=now)
    assert c.reference.startswith("C-") and len(c.reference) == 11
    assert (c.status, c.email, c.language) == ("received", "ann@example.org", "zh-CN")
    assert c.ack_due_at == now + timedelta(hours=48)
    assert c.resolve_due_at == now + timedelta(days=15)
    assert c.provider_id is None and c.provider_asked_at is None
    assert (c.evidence_type, c.evidence_bytes) == ("image/png", len(PNG))
    assert c.evidence_sha256 == hashlib.sha256(PNG).hexdigest()
    assert store.get(c.evidence_key) == PNG  # sealed in the store, opened with its key
    assert PNG not in (store.root / c.evidence_key).read_bytes()
    assert service.by_link(session, c.reference, secret).id == c.id
    with pytest.raises(NotFound):
        service.by_link(session, c.reference, "not-the-secret")
    (event,) = session.exec(select(AuditEvent)).all()
    assert (event.event_type, event.actor) == ("complaint.opened", "public")
    assert "ann@example.org" not in json.dumps(event.payload)  # the log holds no address


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"%PDF-1.7\n" + b"\0" * 64, "application/pdf"),
        (b"\x00\x00\x00\x20ftypqt  " + b"\0" * 64, "video/quicktime"),
        (b"\x00\x00\x00\x20ftypM4A " + b"\0" * 64, "audio/mp4"),
        (b"\x1a\x45\xdf\xa3" + b"\0" * 64, "video/webm"),
    ],
)
def test_evidence_is_kept_with_the_type_its_bytes_say(session, store, data, mime):
    c, _ = _file(session, store, evidence=Evidence(data, "evidence.bin"))
    assert c.evidence_type == mime


@pytest.mark.parametrize(
    ("spec", "evidence", "says"),
    [
        (_spec(kind="nonsense"), None, "Choose what the complaint is about."),
        (_spec(description="short"), None, "Describe what happened"),
        (_spec(email="not an address"), None, "valid e-mail"),
        (_spec(language="fr"), None, "language"),
        (_spec(), Evidence(b"MZ\x90\0 an executable", "x.exe"), "not a kind we take"),
        (_spec(), Evidence(b"BM" + b"\0" * 64, "x.bmp"), "not a kind we take"),
        (_spec(), Evidence(b"fLaC" + b"\0" * 64, "x.flac"), "not a kind we take"),
        (_spec(), Evidence(PNG + b"\0" * MAX, "big.png"), "too large"),
        (_spec(named="0" * 32), None, "No decision or job"),
        (_spec(named="a.b.c"), None, "does not verify"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_nothing_kept(
    session, store, spec, evidence, says
):
    with pytest.raises(InvalidRequest) as refused:
        _file(session, store, spec, evidence)
    assert says in str(refused.value)
    assert store.stale(utcnow() + timedelta(days=1)) == []
    assert _events(session) == []


def test_a_decision_token_names_the_job_and_the_provider_is_told(session, store, factories):
    provider = factories.ProviderFactory()
    job = factories.GateJobFactory(provider=provider, decided=True)
    _hook(session, provider)
    token, jti = SIGNER.sign({"aud": job.provider_id, "sub": job.id}, utcnow() - timedelta(days=2))
    c, _ = _file(session, store, _spec(named=f"  {token}\n"))  # expired: still proves the job
    assert (c.job_id, c.token_jti, c.provider_id) == (job.id, jti, job.provider_id)
    assert c.provider_asked_at is not None
    (told,) = _deliveries(session, "complaint.opened")
    assert told["complaint_id"] == c.id and told["job_id"] == job.id
    assert told["answer_url"] == f"/api/v1/complaints/{c.id}/answer"
    assert "ann@example.org" not in json.dumps(told)  # never the complainant's address

    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(InvalidRequest):
        _file(session, store, _spec(named=forged))
    other = DecisionSigner(KeyRing((generate_key(),)), "x", timedelta(minutes=5))
    with pytest.raises(InvalidRequest, match="does not verify"):
        _file(session, store, _spec(named=other.sign({"aud": "p", "sub": "j"}, utcnow())[0]))


def test_a_label_digest_or_a_job_id_names_the_job(session, store, factories):
    job = factories.GateJobFactory(decided=True)
    session.add(
        DecisionRevision(
            job_id=job.id, revision=1, decision="allow", jti="ab" * 16, token_sha256="cd" * 32
        )
    )
    session.flush()
    by_digest, _ = _file(session, store, _spec(named="sha256:" + "CD" * 32))
    assert (by_digest.job_id, by_digest.token_jti) == (job.id, "ab" * 16)
    by_job, _ = _file(session, store, _spec(named=job.id))
    assert (by_job.job_id, by_job.token_jti, by_job.provider_id) == (job.id, None, job.provider_id)


def test_the_state_machine_from_received_to_resolved(session, store, factories, babel_app):
    provider = factories.ProviderFactory()
    job = factories.GateJobFactory(provider=provider, decided=True)
    _hook(session, provider)
    c, _ = _file(session, store)
    operator = "operator:1"
    with pytest.raises(Conflict, match="Acknowledge"):
        service.ask_provider(session, KEY, RING.public_keys(), c, operator, "What happened?")
    service.acknowledge(session, KEY, c, operator)
    assert c.status == "acknowledged" and c.acknowledged_by == operator
    with pytest.raises(Conflict, match="already acknowledged"):
        service.acknowledge(session, KEY, c, operator)
    with pytest.raises(InvalidRequest, match="names no job"):
        service.ask_provider(session, KEY, RING.public_keys(), c, operator, "What happened?")
    # The provider cannot see (nor answer) a complaint before it is asked about it.
    with pytest.raises(NotFound):
        service.answer(session, KEY, provider, c.id, "Nothing to see.")

    service.ask_provider(
        session, KEY, RING.public_keys(), c, operator, "Did you make it?", named=job.id
    )
    assert (c.status, c.provider_id, c.job_id) == ("awaiting_provider", job.provider_id, job.id)
    assert _deliveries(session, "complaint.opened")[0]["question"] == "Did you make it?"
    other = factories.ProviderFactory()
    with pytest.raises(NotFound):  # another provider's complaint is unknown to it
        service.answer(session, KEY, other, c.id, "Not ours.")
    service.answer(session, KEY, provider, c.id, "Taken down today.", content_removed=True)
    assert (c.status, c.provider_answer, c.provider_content_removed) == (
        "acknowledged",
        "Taken down today.",
        True,
    )
    with pytest.raises(InvalidRequest, match="outcome"):
        service.resolve(session, KEY, c, operator, "maybe", "…")
    service.resolve(session, KEY, c, operator, "upheld", "The video was removed.")
    assert (c.status, c.outcome, c.resolved_by) == ("resolved", "upheld", operator)
    resolved = _deliveries(session, "complaint.resolved")
    assert [(d["outcome"], d["job_id"]) for d in resolved] == [("upheld", job.id)]
    for act in (
        lambda: service.acknowledge(session, KEY, c, operator),
        lambda: service.resolve(session, KEY, c, operator, "rejected", "No."),
        lambda: service.answer(session, KEY, provider, c.id, "More."),
    ):
        with pytest.raises(Conflict):
            act()
    assert _events(session) == [
        "complaint.opened",
        "complaint.acknowledged",
        "complaint.provider_asked",
        "complaint.provider_answered",
        "complaint.resolved",
        "complaint.upheld",
    ]
    assert verify(session, KEY).ok


def test_the_clocks(session, store):
    filed = utcnow() - timedelta(days=3)
    c, _ = _file(session, store, now=filed)
    now = utcnow()
    assert (service.ack_clock(c, now), service.resolve_clock(c, now)) == (
        Clock.OVERDUE,
        Clock.DUE,
    )
    service.acknowledge(session, KEY, c, "operator:1", now=now)
    assert service.ack_clock(c, now) is Clock.LATE
    service.resolve(session, KEY, c, "operator:1", "withdrawn", "Withdrawn by mail.", now=now)
    assert service.resolve_clock(c, now) is Clock.MET
    late = utcnow() + timedelta(days=20)
    d, _ = _file(session, store)
    assert service.resolve_clock(d, late) is Clock.OVERDUE
    assert [x.id for x in service.queue(session)] == [d.id]
    assert {x.id for x in service.queue(session, include_resolved=True)} == {c.id, d.id}


def test_the_mails_speak_the_complainants_language(session, store, babel_app):
    with babel_app.test_request_context():
        c, secret = _file(session, store)  # zh-CN
        received = service.received_mail(c, secret, LIMITS, "https://cs.example/", "cs@x")
        body = received.get_body().get_content()
        assert received["Content-Language"] == "zh-CN"
        assert c.reference in received["Subject"] and "投诉" in received["Subject"]
        assert f"https://cs.example/complaints/{c.reference}?k={secret}" in body
        assert "48" in body and "15" in body
        service.resolve(session, KEY, c, "operator:1", "rejected", "证据不足。")
        told = service.resolved_mail(c, "cs@x")
        assert told["Content-Language"] == "zh-CN" and "证据不足。" in told.get_body().get_content()
        with force_locale("en"):  # the page's language does not matter: the complainant's does
            again = service.resolved_mail(c, "cs@x")
        assert "投诉" in again["Subject"]
        e, _ = _file(session, store, _spec(language="en"))
        service.resolve(session, KEY, e, "operator:1", "upheld", "Removed.")
        mail = service.resolved_mail(e, "cs@x")
        assert mail["Subject"] == f"Your complaint {e.reference}: upheld"
