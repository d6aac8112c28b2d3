"""The test-row factories make valid rows, reuse the parents they are given and make only the
parents they are not, and their traits give the states they name."""

from __future__ import annotations

import numpy as np
from sqlmodel import select

from consent_service.biometrics.service import open_template
from consent_service.models import Decision, Provider, Subject, User
from tests import factories as row_factories


def test_a_decided_job_has_its_decision_row(session, factories):
    job = factories.GateJobFactory(decided=True, decision__decision="deny", decision__reasons=["x"])
    decision = session.get(Decision, job.id)
    assert (job.status, decision.decision, decision.reasons) == ("decided", "deny", ["x"])
    queued = factories.GateJobFactory()
    assert queued.status == "queued" and session.get(Decision, queued.id) is None


def test_parents_given_are_reused_and_only_missing_ones_made(session, factories):
    acme = factories.ProviderFactory()
    factories.GateJobFactory(provider=acme)
    factories.GateJobFactory(provider_id=acme.id)
    subject = factories.SubjectFactory()
    factories.ConsentGrantFactory(subject=subject)
    factories.ConsentGrantFactory(subject_id=subject.id)
    assert len(session.exec(select(Provider)).all()) == 1
    assert len(session.exec(select(Subject)).all()) == len(session.exec(select(User)).all()) == 1
    factories.FindingFactory()  # a job, and its provider, made for it
    assert len(session.exec(select(Provider)).all()) == 2


def test_grant_traits(factories):
    active = factories.ConsentGrantFactory()
    revoked = factories.ConsentGrantFactory(revoked=True)
    expired = factories.ConsentGrantFactory(expired=True)
    assert (active.status, active.version, active.valid_until) == ("active", 1, None)
    assert (revoked.status, revoked.version) == ("revoked", 2)
    assert expired.status == "expired" and expired.valid_until < expired.created_at


def test_a_sealed_template_opens_to_its_vector(session, factories, envelope, reopen):
    template = factories.BiometricTemplateFactory(sealed=(envelope, np.arange(4.0)))
    session.commit()
    with reopen() as s:
        stored = s.get(type(template), template.id)
        assert np.array_equal(open_template(envelope, stored), np.arange(4.0))


def test_build_needs_no_session():
    grant = row_factories.ConsentGrantFactory.build(subject_id=1)
    assert grant.id is None and grant.operations == ["face_swap"]
