"""Consent receipts as pure data: one per grant version, the ISO/IEC TS 27560 / Kantara fields,
stable ids, and the notice digest that proves which words were shown."""

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
    assert (given["event"]["type"], withdrawn["event"]["type"]) == ("given", "withdrawn")
    assert given["receipt_id"] == receipt_id("g" * 32, 1) != withdrawn["receipt_id"]
    assert given["controllers"] == [
        {"name": "Example Ltd", "contact": "privacy@example.com", "on_behalf": False}
    ]
    assert given["subject_reference"] == "s" * 32 and given["jurisdiction"] == "CN"
    assert given["recipients"] == [{"id": "p1", "name": "Acme"}]
    assert withdrawn["recipients"] == [{"id": "p1", "name": "(removed provider)"}]
    assert given["data_categories"] == ["face template"] and given["sensitive"] is True
    assert given["validity"] == {
        "from": "2026-11-24T00:00:00+00:00",
        "until": "2027-01-01T00:00:00+00:00",
    }
    assert given["notice"]["sha256"] == notice_digest() and given["notice"]["url"].startswith(
        "https://x/grants/new"
    )
    assert "https://x/" in given["how_to_withdraw"]
    assert given["method_of_collection"].startswith("web form")


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
    assert r["recipients"] == [{"id": "*", "name": "all providers"}]
    assert r["data_categories"] == ["voice template"]
    assert r["method_of_collection"] == "recorded by an operator (operator-cli)"
    assert r["notice"]["sha256"] is None  # a notice this build does not hold cannot be hashed
    assert r["validity"]["until"] is None


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
