"""A decision's status ("OCSP for consent"): decisions recorded the real way
(`decisions.record_decision`, `decisions.redecide`), then the grants behind them revoked or
ended, then asked by token id and by the token's SHA-256."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import pytest
from sqlmodel import select

from consent_service.consent import service as consent
from consent_service.crypto import StaticKeys
from consent_service.errors import NotFound
from consent_service.gate import decisions, status
from consent_service.gate.decisions import Analysis, PersonSeen, Signing
from consent_service.gate.models import Decision, DecisionRevision, Finding, GateJob
from consent_service.keyring import Pseudonyms
from consent_service.providers.service import create_provider
from consent_service.timeutil import as_utc, utcnow
from consent_service.tokens.service import DecisionSigner, KeyRing, generate_key
from consent_service.vocabulary import (
    DecisionKind,
    DecisionStanding,
    GrantStatus,
    Operation,
    Role,
)

AUDIT_KEY = StaticKeys.single(b"a" * 32)
PSEUDONYMS = Pseudonyms.single(b"p" * 32)
EVIDENCE = consent.Evidence(actor="test", identity_method="test")


@pytest.fixture
def signing() -> Signing:
    signer = DecisionSigner(KeyRing((generate_key(),)), "consent-service", timedelta(minutes=15))
    return Signing(AUDIT_KEY, signer, PSEUDONYMS)


@pytest.fixture
def provider(session):
    return create_provider(session, "Studio")


def _grant(session, subject_id: int, valid_until=None):
    return consent.grant(
        session,
        AUDIT_KEY,
        subject_id,
        consent.GrantRequest(
            [Operation.FACE_SWAP], [Role.SOURCE], True, [], valid_until=valid_until
        ),
        EVIDENCE,
    )


def _decide(session, provider, signing, *subject_ids: int | None) -> DecisionRevision:
    """A face-swap job with one source person per subject id (None: nobody enrolled)."""
    job = GateJob(provider_id=provider.id, operation=Operation.FACE_SWAP.value)
    session.add(job)
    session.flush()
    people = [PersonSeen(0, Role.SOURCE, (1, 2, 3, 4), s, False) for s in subject_ids]
    decisions.record_decision(session, job, Analysis(people), signing)
    session.flush()
    return _revision(session, job.id, 1)


def _revision(session, job_id: str, number: int) -> DecisionRevision:
    return session.exec(
        select(DecisionRevision).where(
            DecisionRevision.job_id == job_id, DecisionRevision.revision == number
        )
    ).one()


def test_an_allow_is_valid_until_its_grant_is_revoked_then_withdrawn_since_then(
    session, make_subject, provider, signing
):
    subject = make_subject()
    grant = _grant(session, subject.id)
    revision = _decide(session, provider, signing, subject.id)
    assert revision.decision == DecisionKind.ALLOW

    before = status.standing(session, revision, utcnow())
    assert (before.status, before.since, before.superseded_by) == (
        DecisionStanding.VALID,
        None,
        None,
    )
    assert [(g.grant_id, g.status) for g in before.grants] == [(grant.grant_id, GrantStatus.ACTIVE)]

    revoked = consent.revoke(session, AUDIT_KEY, subject.id, grant.grant_id, EVIDENCE)
    after = status.standing(session, revision, utcnow())
    assert after.status is DecisionStanding.CONSENT_WITHDRAWN
    assert after.since == as_utc(revoked.created_at)
    (state,) = after.grants
    assert (state.grant_id, state.version, state.current_version, state.status) == (
        grant.grant_id,
        1,
        2,
        GrantStatus.REVOKED,
    )
    assert state.since == as_utc(revoked.created_at)
    # The public view: the status and its time, nothing that names anyone.
    view = status.status_view(after, utcnow())
    assert (view.status, view.since, view.decision) == (
        DecisionStanding.CONSENT_WITHDRAWN,
        as_utc(revoked.created_at),
        DecisionKind.ALLOW,
    )
    text = view.model_dump_json()
    job = session.get(GateJob, revision.job_id)
    for private in (grant.grant_id, revision.job_id, job.provider_id, str(subject.public_id)):
        assert private not in text


def test_a_revision_is_superseded_by_the_next_one(session, make_subject, provider, signing):
    """A needs_consent decision (nobody named), then the person is identified (as by an
    approved consent request) and the job decided again: revision 1 is superseded by 2."""
    subject = make_subject()
    _grant(session, subject.id)
    first = _decide(session, provider, signing, None)
    assert first.decision == DecisionKind.NEEDS_CONSENT
    assert status.standing(session, first, utcnow()).status is DecisionStanding.VALID
    finding = session.exec(select(Finding).where(Finding.job_id == first.job_id)).one()

    decisions.redecide(
        session,
        first.job_id,
        {finding.id: subject.id},
        AUDIT_KEY,
        signing.signer,
        PSEUDONYMS,
        "consent request r1",
    )
    second = _revision(session, first.job_id, 2)
    assert second.decision == DecisionKind.ALLOW

    old = status.standing(session, first, utcnow())
    assert old.status is DecisionStanding.SUPERSEDED
    assert old.superseded_by is not None and old.superseded_by.jti == second.jti
    assert old.since == as_utc(second.created_at)
    view = status.status_view(old, utcnow())
    assert view.superseded_by is not None
    assert (view.superseded_by.revision, view.superseded_by.decision) == (2, DecisionKind.ALLOW)
    assert status.standing(session, second, utcnow()).status is DecisionStanding.VALID


def test_an_allow_whose_grant_period_ends_is_consent_expired_from_its_end(
    session, make_subject, provider, signing
):
    subject = make_subject()
    until = utcnow() + timedelta(hours=1)
    _grant(session, subject.id, valid_until=until)
    revision = _decide(session, provider, signing, subject.id)
    assert status.standing(session, revision, utcnow()).status is DecisionStanding.VALID
    # Before beat writes the `expired` version, the end of the period is enough.
    later = status.standing(session, revision, until + timedelta(seconds=1))
    assert (later.status, later.since) == (DecisionStanding.CONSENT_EXPIRED, as_utc(until))


def test_a_withdrawal_outranks_an_expiry_and_names_the_earliest_time(
    session, make_subject, provider, signing
):
    alice, bob = make_subject(), make_subject()
    until = utcnow() + timedelta(hours=1)
    _grant(session, alice.id, valid_until=until)
    bobs = _grant(session, bob.id)
    revision = _decide(session, provider, signing, alice.id, bob.id)
    revoked = consent.revoke(session, AUDIT_KEY, bob.id, bobs.grant_id, EVIDENCE)
    both = status.standing(session, revision, until + timedelta(hours=1))
    assert both.status is DecisionStanding.CONSENT_WITHDRAWN
    assert both.since == as_utc(revoked.created_at)
    assert sorted(g.status for g in both.grants) == [GrantStatus.EXPIRED, GrantStatus.REVOKED]


def test_a_deny_stands_whatever_happens_to_grants(session, make_subject, provider, signing):
    subject = make_subject(protect_only=True)
    grant = _grant(session, subject.id)
    revision = _decide(session, provider, signing, subject.id)
    assert revision.decision == DecisionKind.DENY
    consent.revoke(session, AUDIT_KEY, subject.id, grant.grant_id, EVIDENCE)
    standing = status.standing(session, revision, utcnow())
    assert (standing.status, standing.grants) == (DecisionStanding.VALID, [])


def test_a_token_is_found_by_its_id_or_its_sha256_and_nothing_else(
    session, make_subject, provider, signing
):
    subject = make_subject()
    _grant(session, subject.id)
    revision = _decide(session, provider, signing, subject.id)
    decision = session.get(Decision, revision.job_id)
    assert revision.token is not None and revision.token == decision.token
    digest = hashlib.sha256(revision.token.encode()).hexdigest()
    assert revision.token_sha256 == digest
    assert revision.jti is not None
    for ref in (revision.jti, digest, digest.upper()):
        assert status.find_revision(session, ref).id == revision.id
    for ref in ("", "x" * 32, "0" * 32, "0" * 64, revision.job_id + "0", "../" + revision.jti):
        with pytest.raises(NotFound):
            status.find_revision(session, ref)
    claims = json.loads(base64.urlsafe_b64decode(revision.token.split(".")[1] + "=="))
    assert status.revision_of_claims(session, claims).id == revision.id
    assert status.revision_of_claims(session, {**claims, "sub": "another job"}) is None
