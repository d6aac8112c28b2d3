"""Managed subjects: who may be added, who may act for them, and what a grant records."""

from __future__ import annotations

from datetime import date

import pytest

from consent_service.accounts.service import (
    acting_subject,
    guardian_evidence,
    mark_verified,
    sign_up,
    subject_of,
)
from consent_service.consent import service as consent
from consent_service.consent.receipts import Controller, build_receipt
from consent_service.crypto import StaticKeys
from consent_service.errors import InvalidRequest, NotFound
from consent_service.guardians import service as guardians
from consent_service.vocabulary import Operation, Role

KEY = StaticKeys.single(b"k" * 32)
TODAY = date(2026, 11, 24)
PASSWORD = "long enough password"


def _add(session, guardian, born=date(2018, 5, 1), **kw):
    args = {"relationship": "parent", "declared": True, **kw}
    return guardians.add_child(
        session, KEY, guardian, "Mei", born, args["relationship"], args["declared"], TODAY
    )


def test_age_is_counted_in_whole_years():
    assert guardians.age_on(date(2012, 11, 25), TODAY) == 13
    assert guardians.age_on(date(2012, 11, 24), TODAY) == 14


def test_only_a_declared_child_under_14_is_added(session):
    guardian = sign_up(session, "g@example.org", PASSWORD)
    with pytest.raises(InvalidRequest):
        _add(session, guardian, born=date(2012, 11, 24))  # 14 today
    with pytest.raises(InvalidRequest):
        _add(session, guardian, declared=False)
    with pytest.raises(InvalidRequest):
        _add(session, guardian, relationship="aunt")
    with pytest.raises(InvalidRequest):
        _add(session, guardian, born=date(2027, 1, 1))
    child = _add(session, guardian, born=date(2012, 11, 25))
    assert guardians.children_of(session, guardian) == [child]
    # The account's own subject is unchanged by managing a child.
    own = subject_of(session, guardian)
    assert own.id != child.id and own.user_id == child.user_id == guardian.id


def test_acting_subject_is_own_or_a_managed_child_only(session):
    guardian = sign_up(session, "g@example.org", PASSWORD)
    other = sign_up(session, "o@example.org", PASSWORD)
    child = _add(session, guardian)
    assert acting_subject(session, guardian, None) == subject_of(session, guardian)
    assert acting_subject(session, guardian, child.id) == child
    with pytest.raises(NotFound):
        acting_subject(session, other, child.id)
    with pytest.raises(NotFound):  # not even one's own subject by id: it is "me"
        acting_subject(session, other, subject_of(session, other).id)
    guardians.end_guardianship(session, child.id)
    with pytest.raises(NotFound):
        acting_subject(session, guardian, child.id)
    assert guardians.children_of(session, guardian) == []


def test_a_grant_for_a_child_names_the_guardian_in_its_receipt(session):
    guardian = sign_up(session, "g@example.org", PASSWORD)
    mark_verified(guardian)
    child = _add(session, guardian)
    assert guardian_evidence(session, subject_of(session, guardian)) is None
    evidence = consent.Evidence(
        actor=f"user:{guardian.id}",
        identity_method="password-session",
        guardian=guardian_evidence(session, child),
    )
    request = consent.GrantRequest([Operation.FACE_SWAP], [Role.TARGET], True, [])
    row = consent.grant(session, KEY, child.id, request, evidence)
    receipt = build_receipt(row, child, {}, Controller("C", "c@x", "CN"), "https://x/")
    assert receipt["piiPrincipalId"] == child.public_id
    guardian_ref = subject_of(session, guardian).public_id
    assert receipt["grant"]["guardian"]["reference"] == guardian_ref
    assert receipt["grant"]["guardian"]["relationship"] == "parent"
    assert receipt["iso27560"]["events"][0]["entity_id"] == guardian_ref  # who acted
    assert "guardian" in receipt["collectionMethod"]
