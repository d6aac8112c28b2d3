"""Consent requests as a state machine: pending → approved | declined | expired, never answered
twice; the face found in a job must match the approver's enrolled face; approval re-decides
the waiting job as a new revision."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sqlmodel import select

from consent_service.accounts.models import Subject
from consent_service.audit.models import AuditEvent
from consent_service.consent import service as consent
from consent_service.consent_requests import service
from consent_service.consent_requests.models import ConsentRequest
from consent_service.crypto import StaticKeys
from consent_service.errors import InvalidRequest
from consent_service.gate.finding_faces import keep_finding_face
from consent_service.gate.models import Decision, DecisionRevision, Finding, FindingFace
from consent_service.gate.public import job_view
from consent_service.keyring import Pseudonyms
from consent_service.providers.service import create_provider
from consent_service.timeutil import utcnow
from consent_service.tokens.service import DecisionSigner, KeyRing, generate_key
from consent_service.vocabulary import Modality
from tests import factories

AUDIT_KEY = StaticKeys.single(b"a" * 32)
PSEUDONYMS = Pseudonyms.single(b"p" * 32)
TTL = timedelta(days=7)
TOLERANCES = service.Tolerances(face=0.5, voice=0.65)
FACE = np.full(128, 0.05)


@pytest.fixture
def gate_keys():
    signer = DecisionSigner(KeyRing((generate_key(),)), "consent-service", timedelta(days=1))
    return service.Gate(signer, PSEUDONYMS)


@pytest.fixture
def waiting_job(session, envelope, make_subject, factories):
    """A needs_consent job: one consented person, one stranger whose face was kept."""
    provider = create_provider(session, "acme")
    known = make_subject()
    consent.grant(
        session,
        AUDIT_KEY,
        known.id,
        consent.GrantRequest(
            operations=[consent.Operation.FACE_SWAP],
            roles=[consent.Role.SOURCE, consent.Role.TARGET],
            all_providers=True,
            provider_ids=[],
        ),
        consent.Evidence(actor="test", identity_method="test"),
    )
    job = factories.GateJobFactory(
        provider=provider,
        decided=True,
        decision__decision="needs_consent",
        decision__reasons=["unenrolled"],
    )
    factories.FindingFactory(job=job, outcome="consented", subject_id=known.id)
    stranger = factories.FindingFactory(job=job, outcome="unenrolled")
    keep_finding_face(session, envelope, stranger, Modality.FACE, FACE, utcnow() + TTL)
    session.flush()
    return provider, job


def _enroll(session, envelope, subject, vector):
    with factories.bound(session):
        factories.BiometricTemplateFactory(subject=subject, sealed=(envelope, vector))


def _open(session, envelope, provider, job, **kw):
    spec = service.RequestSpec(job_id=job.id, finding=1, email="stranger@example.org", **kw)
    req, secret, created = service.open_request(
        session, envelope, AUDIT_KEY, PSEUDONYMS, provider, spec, TTL
    )
    assert created and secret
    return req, secret


def _user(session, subject):
    from consent_service.accounts.models import User

    return session.get(User, subject.user_id)


def _approve(session, envelope, req, subject, gate_keys):
    return service.approve(
        session,
        envelope,
        AUDIT_KEY,
        req,
        _user(session, subject),
        subject,
        TOLERANCES,
        consent.Evidence(
            actor=f"user:{subject.user_id}", identity_method=f"consent request {req.id}"
        ),
        gate_keys,
    )


def test_the_kept_face_is_sealed_and_never_in_the_providers_view(session, envelope, waiting_job):
    provider, job = waiting_job
    req, _ = _open(session, envelope, provider, job)
    assert req.status == "pending" and req.modality == "face"
    assert FACE.astype("<f8").tobytes() not in (req.face_ciphertext or b"")
    view = service.provider_view(req).model_dump()
    assert view["status"] == "pending" and view["roles"] == ["source"]
    assert not any("face" in k or "cipher" in k for k in view)


def test_a_stranger_finding_needs_an_address(session, envelope, waiting_job):
    provider, job = waiting_job
    with pytest.raises(InvalidRequest, match="email"):
        service.open_request(
            session,
            envelope,
            AUDIT_KEY,
            PSEUDONYMS,
            provider,
            service.RequestSpec(job_id=job.id, finding=1),
            TTL,
        )
    with pytest.raises(InvalidRequest, match="nothing to ask"):  # the consented one
        service.open_request(
            session,
            envelope,
            AUDIT_KEY,
            PSEUDONYMS,
            provider,
            service.RequestSpec(job_id=job.id, finding=0, email="x@example.org"),
            TTL,
        )


def test_approval_by_the_matching_face_grants_and_redecides_the_job(
    session, envelope, waiting_job, make_subject, gate_keys
):
    provider, job = waiting_job
    req, _ = _open(session, envelope, provider, job)
    person = make_subject()
    _enroll(session, envelope, person, FACE + 0.01)
    _approve(session, envelope, req, person, gate_keys)
    assert req.status == "approved" and req.grant_id and req.face_ciphertext is None
    decision = session.get(Decision, job.id)
    assert (decision.decision, decision.revision) == ("allow", 2)
    assert decision.token
    revisions = session.exec(
        select(DecisionRevision).where(DecisionRevision.job_id == job.id)
    ).all()
    assert [r.revision for r in revisions] == [2]  # revision 1 was hand-made above
    view = job_view(session, provider.id, job.id, PSEUDONYMS)
    assert [f.outcome for f in view.findings] == ["consented", "consented"]
    with pytest.raises(service.RequestClosed):  # no double answer
        service.decline(session, AUDIT_KEY, req, _user(session, person), "again")
    with pytest.raises(service.RequestClosed):
        _approve(session, envelope, req, person, gate_keys)


def test_another_face_or_no_face_is_refused(
    session, envelope, waiting_job, make_subject, gate_keys
):
    provider, job = waiting_job
    req, _ = _open(session, envelope, provider, job)
    unenrolled = make_subject()
    with pytest.raises(service.NotTheRightPerson, match="Enroll your face first"):
        _approve(session, envelope, req, unenrolled, gate_keys)
    other = make_subject()
    _enroll(session, envelope, other, -FACE)
    with pytest.raises(service.NotTheRightPerson, match="does not match"):
        _approve(session, envelope, req, other, gate_keys)
    assert req.status == "pending"
    assert session.get(Decision, job.id).decision == "needs_consent"


def test_decline_and_expiry_end_the_request(session, envelope, waiting_job, make_subject):
    provider, job = waiting_job
    first, _ = _open(session, envelope, provider, job)
    person = make_subject()
    service.decline(session, AUDIT_KEY, first, _user(session, person), "user")
    assert first.status == "declined" and first.face_ciphertext is None
    second, _ = _open(session, envelope, provider, job)
    later = utcnow() + TTL + timedelta(seconds=1)
    assert service.status_of(second, later) == "expired"  # on read, before the task runs
    assert service.expire_due(session, AUDIT_KEY, later) == 1
    assert second.status == "expired" and second.face_ciphertext is None
    assert session.exec(select(FindingFace)).all() == []  # purged past its time too
    with pytest.raises(service.RequestClosed):
        service.decline(session, AUDIT_KEY, second, _user(session, person), "user")
    assert session.exec(select(ConsentRequest)).all() == [first, second]


def test_a_request_naming_a_subject_is_answered_only_for_it(
    session, envelope, waiting_job, make_subject, gate_keys
):
    """What a guardian's inbox relies on: a request the gate matched to one subject opens for
    an account managing it, is refused for its other subjects, and names the guardian."""
    provider, job = waiting_job
    known = session.exec(select(Finding).where(Finding.subject_id.is_not(None))).one()
    known.outcome = "not_covered"  # as if the grant did not cover it: something to ask
    session.flush()
    req, secret = _open(session, envelope, provider, job)  # the stranger's face, by e-mail
    named, _, _ = service.open_request(
        session,
        envelope,
        AUDIT_KEY,
        PSEUDONYMS,
        provider,
        service.RequestSpec(job_id=job.id, finding=0),
        TTL,
    )
    child, own = session.get(Subject, known.subject_id), make_subject()
    user = _user(session, own)
    assert service.may_open(named, user, {own.id, child.id}, None)
    assert not service.may_open(named, user, {own.id}, None)
    assert service.may_open(named, user, {own.id}, secret) is False  # another request's link
    assert service.named_elsewhere(named, own, [own, child]) is child
    assert service.named_elsewhere(named, child, [own, child]) is None
    assert service.named_elsewhere(named, own, [own]) is None  # not the account's: no hint
    assert service.named_elsewhere(req, own, [own, child]) is None  # names nobody yet

    with pytest.raises(service.NotTheRightPerson, match="someone else"):
        service.decline(session, AUDIT_KEY, named, user, f"user:{user.id}", own)
    with pytest.raises(service.NotTheRightPerson, match="someone else"):
        _approve(session, envelope, named, own, gate_keys)
    assert named.status == "pending"

    guardian = {"reference": own.public_id, "relationship": "parent", "declared_at": "x"}
    service.decline(session, AUDIT_KEY, named, user, f"user:{user.id}", child, guardian)
    assert named.status == "declined" and named.answered_by == user.id
    event = session.exec(
        select(AuditEvent).where(AuditEvent.event_type == "consent_request.declined")
    ).one()
    assert event.subject_id == child.id and event.payload["guardian"] == guardian
