"""Consent receipts as pure data: one per grant version, the Kantara CR v1.1 and ISO/IEC TS 27560
fields, stable ids, and the notice digest that proves which words were shown (signing them:
tests/unit/rights/test_signed_receipts.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from consent_service.accounts.models import Subject
from consent_service.consent.models import ConsentGrant
from consent_service.consent.notice import NOTICE_VERSION, notice, notice_digest
from consent_service.consent.receipts import Controller, build_receipt, receipt_id
from consent_service.vocabulary import Modality

CONTROLLER = Controller("Example Ltd", "privacy@example.com", "CN")
SUBJECT = Subject(id=1, public_id="s" * 32, user_id=1)


def _version(version: int, status: str, **kw) -> ConsentGrant:
    base = {
        "grant_id": "g" * 32,
        "version": version,
        "subject_id": 1,
        "status": status,
        "modality": "face",
        "operations": ["face_swap"],
        "roles": ["source"],
        "all_providers": False,
        "provider_ids": ["p1"],
        "purpose": "A music video",
        "valid_from": datetime(2026, 11, 24, tzinfo=UTC),
        "valid_until": datetime(2027, 1, 1, tzinfo=UTC),
        "notice_version": NOTICE_VERSION,
        "language": "en",
        "identity_method": "password-session",
        "actor": "user:1",
        "created_at": datetime(2026, 11, 24, 12, tzinfo=UTC),
    }
    return ConsentGrant(**{**base, **kw})


def test_a_grant_and_its_revocation_give_two_receipts():
    given = build_receipt(_version(1, "active"), SUBJECT, {"p1": "Acme"}, CONTROLLER, "https://x/")
    withdrawn = build_receipt(_version(2, "revoked"), SUBJECT, {}, CONTROLLER, "https://x/")
    # Kantara CR v1.1, at the top level
    assert given["version"] == "KI-CR-v1.1.0" and given["jurisdiction"] == "CN"
    assert given["consentReceiptID"] == receipt_id("g" * 32, 1) != withdrawn["consentReceiptID"]
    assert given["consentTimestamp"] == int(datetime(2026, 11, 24, 12, tzinfo=UTC).timestamp())
    assert given["piiPrincipalId"] == "s" * 32 and given["language"] == "en"
    assert given["piiControllers"] == [
        {
            "piiController": "Example Ltd",
            "onBehalf": False,
            "contact": "privacy@example.com",
            "piiControllerUrl": "https://x/",
        }
    ]
    [purpose] = given["services"][0]["purposes"]
    assert purpose["purpose"] == "A music video" and purpose["consentType"] == "EXPLICIT"
    assert purpose["piiCategory"] == ["face template"] and purpose["thirdPartyName"] == "Acme"
    assert purpose["termination"] == "2027-01-01T00:00:00+00:00 or when withdrawn"
    assert given["sensitive"] is True and given["spiCat"] == ["biometric"]
    assert given["collectionMethod"].startswith("web form")
    assert given["policyUrl"] == "https://x/grants/new"
    # ISO/IEC TS 27560: the same consent as a record
    iso = given["iso27560"]
    assert iso["schema_version"] == "ISO/IEC TS 27560:2023"
    assert (iso["record_id"], iso["receipt_id"]) == ("g" * 32, given["consentReceiptID"])
    assert iso["pii_principal_id"] == "s" * 32
    assert iso["privacy_notice"]["sha256"] == notice_digest()
    [p] = iso["purposes"]
    assert p["recipient_third_parties"] == [{"id": "p1", "name": "Acme"}]
    assert p["pii_information"][0]["pii_type"] == "face template"
    assert p["processing_method"] == {
        "modality": "face",
        "edit_types": ["face_swap"],
        "roles": ["source"],
    }
    assert "https://x/" in p["withdrawal_method"]
    assert iso["parties"][0]["party_name"] == "Example Ltd"
    assert iso["events"][0]["validity_duration"] == {
        "from": "2026-11-24T00:00:00+00:00",
        "until": "2027-01-01T00:00:00+00:00",
    }
    assert [r["iso27560"]["events"][0]["event_state"] for r in (given, withdrawn)] == [
        "consent given",
        "consent withdrawn",
    ]
    assert withdrawn["iso27560"]["purposes"][0]["recipient_third_parties"] == [
        {"id": "p1", "name": "(removed provider)"}
    ]
    assert given["grant"] == {
        "grant_id": "g" * 32,
        "version": 1,
        "status": "active",
        "refusal": False,
        "purposes": [],
        "guardian": None,
    }
    # A grant naming no purposes covers every one, and says so where purposes are categorised.
    assert purpose["purposeCategory"][1:] == ["every purpose"]
    assert p["purpose_categories"] == ["every purpose"]


def test_the_purposes_a_grant_covers_are_its_purpose_categories():
    r = build_receipt(
        _version(1, "active", purposes=["education", "research"]),
        SUBJECT,
        {},
        CONTROLLER,
        "https://x",
    )
    [kantara] = r["services"][0]["purposes"]
    assert kantara["purposeCategory"] == [
        "editing of biometric information (deep synthesis)",
        "education",
        "research",
    ]
    assert r["iso27560"]["purposes"][0]["purpose_categories"] == ["education", "research"]
    assert r["grant"]["purposes"] == ["education", "research"]


def test_a_refusal_and_its_withdrawal_have_receipts_that_say_so():
    refused = build_receipt(
        _version(1, "refused", refusal=True), SUBJECT, {"p1": "Acme"}, CONTROLLER, "https://x"
    )
    withdrawn = build_receipt(
        _version(2, "revoked", refusal=True), SUBJECT, {"p1": "Acme"}, CONTROLLER, "https://x"
    )
    states = [r["iso27560"]["events"][0]["event_state"] for r in (refused, withdrawn)]
    assert states == ["consent refused", "refusal withdrawn"]
    assert refused["grant"]["refusal"] is True
    assert "Withdraw refusal" in refused["iso27560"]["purposes"][0]["withdrawal_method"]


def test_all_providers_operator_records_and_unknown_notices():
    row = _version(
        1,
        "active",
        all_providers=True,
        provider_ids=[],
        modality="voice",
        operations=["voice_cloning"],
        actor="operator:cli",
        identity_method="operator-cli",
        notice_version="1999-1",
        valid_until=None,
    )
    r = build_receipt(row, SUBJECT, {}, CONTROLLER, "https://x")
    p = r["iso27560"]["purposes"][0]
    assert p["recipient_third_parties"] == [{"id": "*", "name": "all providers"}]
    assert r["services"][0]["purposes"][0]["piiCategory"] == ["voice template"]
    assert r["collectionMethod"] == "recorded by an operator (operator-cli)"
    # a notice this build does not hold cannot be hashed
    assert r["iso27560"]["privacy_notice"]["sha256"] is None
    assert r["iso27560"]["events"][0]["validity_duration"]["until"] is None
    assert r["services"][0]["purposes"][0]["termination"] == "when withdrawn"


def test_an_expired_version_says_the_service_recorded_it():
    row = _version(2, "expired", actor="system:expiry", identity_method="password-session")
    r = build_receipt(row, SUBJECT, {}, CONTROLLER, "https://x")
    assert r["collectionMethod"] == "recorded by the service (expiry)"
    assert r["iso27560"]["events"][0]["event_state"] == "consent expired"


def test_the_notice_answers_the_six_questions_for_each_modality():
    for modality in Modality:
        sections = notice(modality, "Example Ltd")
        assert [h for h, _ in sections] == [
            "Who",
            "What",
            "Why",
            "How long",
            "How to withdraw",
            "Consequences",
        ]
        assert "Example Ltd" in sections[0][1]
        assert modality.value in " ".join(t for _, t in sections)
