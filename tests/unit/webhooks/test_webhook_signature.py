"""Webhook signatures, as a provider's receiver checks them with `verify_signature`."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from consent_service.client import SignatureError, verify_signature
from consent_service.webhooks.signature import sign

SECRET = "whsec_test-secret"
BODY = b'{"data":{"decision":"allow","job_id":"j1"},"id":"d1","type":"job.decided"}'
NOW = 1_800_000_000


def test_a_fresh_signature_over_the_exact_body_verifies():
    header = sign(SECRET, BODY, NOW)
    assert header.startswith(f"t={NOW},v1=")
    assert verify_signature(SECRET, header, BODY, now=NOW + 10) == NOW
    assert verify_signature(SECRET, header, BODY.decode(), now=NOW) == NOW  # str body too


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body():
    # What a receiver in any language computes: hex(HMAC-SHA256(secret, "<t>." + body)).
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, NOW) == f"t={NOW},v1={expected}"


def test_signing_now_uses_the_clock():
    verify_signature(SECRET, sign(SECRET, BODY), BODY)


def test_a_tampered_body_is_refused():
    header = sign(SECRET, BODY, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(SECRET, header, BODY.replace(b"allow", b"deny!"), now=NOW)
    with pytest.raises(SignatureError):
        verify_signature(SECRET, header, BODY + b" ", now=NOW)


def test_a_wrong_secret_is_refused():
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature("whsec_other", sign(SECRET, BODY, NOW), BODY, now=NOW)


def test_a_changed_timestamp_breaks_the_signature():
    signature = sign(SECRET, BODY, NOW).split(",")[1]
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(SECRET, f"t={NOW + 1},{signature}", BODY, now=NOW)


def test_a_replay_older_than_five_minutes_is_refused():
    header = sign(SECRET, BODY, NOW)
    assert verify_signature(SECRET, header, BODY, now=NOW + 300) == NOW
    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature(SECRET, header, BODY, now=NOW + 301)
    with pytest.raises(SignatureError, match="tolerance"):  # and from the future
        verify_signature(SECRET, header, BODY, now=NOW - 301)
    with pytest.raises(SignatureError, match="tolerance"):  # a tighter window of one's own
        verify_signature(SECRET, header, BODY, tolerance=5, now=NOW + 6)


def test_any_matching_v1_among_several_verifies():
    good = sign(SECRET, BODY, NOW).split(",")[1]
    header = f"t={NOW},v1={'0' * 64},{good}"
    assert verify_signature(SECRET, header, BODY, now=NOW) == NOW


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "t=1800000000",
        "v1=abc",
        "t=abc,v1=00",
        "t=-5,v1=00",
        "t=1800000000,t=1800000000,v1=00",
        "t=1800000000;v1=00",
        "t=1800000000,v1=" + "0" * 2000,
    ],
)
def test_malformed_headers_are_refused(header):
    with pytest.raises(SignatureError):
        verify_signature(SECRET, header, BODY, now=NOW)


def test_signature_error_is_a_value_error():
    # Receivers that catch ValueError around their parsing also catch bad signatures.
    assert issubclass(SignatureError, ValueError)
