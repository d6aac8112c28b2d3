"""Signed consent receipts: a JWS of their own type that verifies with the published keys and
says exactly what was built, refuses any change, and is never taken for a decision token (nor a
decision token for a receipt), though the same keys sign both."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from consent_service.accounts.models import Subject
from consent_service.consent.models import ConsentGrant
from consent_service.consent.receipts import Controller, build_receipt
from consent_service.errors import TokenInvalid
from consent_service.rights.receipts import (
    RECEIPT_TYP,
    receipt_content,
    sign_receipt,
    verify_receipt,
)
from consent_service.tokens.service import (
    DecisionSigner,
    KeyRing,
    generate_key,
    sign_document,
    verify_token,
)

CONTROLLER = Controller("Example Ltd", "privacy@example.com", "CN")
SUBJECT = Subject(id=1, public_id="s" * 32, user_id=1)
NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


def _ring() -> KeyRing:
    return KeyRing((generate_key(),))


def _content() -> dict:
    row = ConsentGrant(
        grant_id="g" * 32,
        version=1,
        subject_id=1,
        modality="face",
        operations=["face_swap"],
        roles=["source"],
        provider_ids=["p1"],
        purpose="A music video",
        valid_from=datetime(2026, 11, 24, tzinfo=UTC),
        actor="user:1",
        identity_method="password-session",
        created_at=datetime(2026, 11, 24, 12, tzinfo=UTC),
    )
    return build_receipt(row, SUBJECT, {"p1": "Acme"}, CONTROLLER, "https://x/")


def _b64(data: dict) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_signed_receipt_verifies_and_says_exactly_what_was_built():
    ring = _ring()
    content = _content()
    jws, kid = sign_receipt(content, ring, "consent-service", NOW)
    assert kid == ring.keys[0].kid
    header = json.loads(base64.urlsafe_b64decode(jws.split(".")[0] + "=="))
    assert header == {"alg": "EdDSA", "kid": kid, "typ": RECEIPT_TYP}
    payload, used = verify_receipt(jws, ring.public_keys())
    assert used == kid
    assert payload == receipt_content(jws)
    assert {k: v for k, v in payload.items() if k not in ("iss", "iat", "jti")} == content
    assert (payload["iss"], payload["iat"]) == ("consent-service", int(NOW.timestamp()))
    assert payload["jti"] == content["consentReceiptID"]


def test_a_changed_receipt_is_refused():
    ring = _ring()
    jws, _ = sign_receipt(_content(), ring, "consent-service", NOW)
    head, body, sig = jws.split(".")
    payload = receipt_content(jws)
    payload["iso27560"]["purposes"][0]["processing_method"]["edit_types"].append("face_generation")
    with pytest.raises(TokenInvalid, match="signature does not verify"):
        verify_receipt(f"{head}.{_b64(payload)}.{sig}", ring.public_keys())
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    with pytest.raises(TokenInvalid):
        verify_receipt(f"{head}.{body}.{flipped}", ring.public_keys())
    # Another service's keys (or a key no longer published) do not vouch for it.
    with pytest.raises(TokenInvalid, match="Unknown key id"):
        verify_receipt(jws, _ring().public_keys())


def test_a_receipt_is_never_a_decision_token_nor_the_reverse():
    ring = _ring()
    jws, _ = sign_receipt(_content(), ring, "consent-service", NOW)
    with pytest.raises(TokenInvalid, match="typ"):
        verify_token(jws, ring.public_keys(), allow_expired=True)
    # Even a receipt carrying every claim a decision token needs is refused for its type.
    full = {**_content(), "aud": "p1", "sub": "j" * 32, "exp": int(NOW.timestamp()) + 60}
    jws_full, _ = sign_receipt(full, ring, "consent-service", NOW)
    with pytest.raises(TokenInvalid, match="typ"):
        verify_token(jws_full, ring.public_keys(), allow_expired=True)
    # And a decision token, signed by the same keys, is not a receipt.
    token, _ = DecisionSigner(ring, "consent-service", timedelta(minutes=5)).sign(
        {"aud": "p1", "sub": "j" * 32}, NOW
    )
    with pytest.raises(TokenInvalid, match="typ"):
        verify_receipt(token, ring.public_keys())


def test_receipts_are_signed_with_their_own_type_only():
    with pytest.raises(ValueError, match="decision tokens"):
        sign_document({"a": 1}, _ring(), "JWT", NOW)
