"""Decision tokens: EdDSA only, every forgery and misuse refused, rotation without a gap."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consent_service.errors import TokenInvalid
from consent_service.settings import InsecureSettings, Settings
from consent_service.timeutil import utcnow
from consent_service.tokens import service
from consent_service.tokens.service import (
    DecisionSigner,
    KeyConfigError,
    KeyRing,
    decision_claims,
    generate_key,
    verify_token,
)

PROVIDER = "prov0123456789abcdef0123456789ab"
JOB = "job00123456789abcdef0123456789ab"


def claims(**overrides) -> dict:
    base = decision_claims(
        job_id=JOB,
        provider_id=PROVIDER,
        operation="face_swap",
        decision="allow",
        reasons=["all_consented"],
        media=[{"position": 0, "role": "source", "sha256": "ab" * 32}],
        findings=[
            {
                "media": 0,
                "role": "source",
                "outcome": "consented",
                "subject_ref": "cd" * 16,
                "grant_id": "g1",
                "grant_version": 2,
                "assurance": "live",
            }
        ],
        assurance_required="live",
    )
    return {**base, **overrides}


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing((generate_key(),))


@pytest.fixture
def signer(ring) -> DecisionSigner:
    return DecisionSigner(ring, "consent-service", timedelta(days=30))


@pytest.fixture
def token(signer) -> str:
    return signer.sign(claims(), utcnow())[0]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forge(header: dict, payload: dict, signature: bytes) -> str:
    return (
        f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"
    )


def payload_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_a_valid_token_verifies_with_its_claims(ring, signer):
    now = utcnow()
    token, jti = signer.sign(claims(), now)
    got, kid = verify_token(token, ring.public_keys(), audience=PROVIDER, issuer="consent-service")
    assert kid == ring.keys[0].kid
    assert got["jti"] == jti and got["sub"] == JOB and got["aud"] == PROVIDER
    assert got["exp"] - got["iat"] == 30 * 86400
    assert got["findings"][0] == {
        "media": 0,
        "role": "source",
        "outcome": "consented",
        "subject_ref": "cd" * 16,
        "grant_id": "g1",
        "grant_version": 2,
        "assurance": "live",
    }
    assert got["assurance_required"] == "live"
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"


def test_alg_none_is_refused(ring, token):
    body = payload_of(token)
    kid = ring.keys[0].kid
    for alg in ("none", "None", "NONE"):
        unsigned = forge({"alg": alg, "kid": kid}, body, b"")
        with pytest.raises(TokenInvalid):
            verify_token(unsigned, ring.public_keys())
        # Even with something signature-shaped after the last dot.
        with pytest.raises(TokenInvalid, match="EdDSA only"):
            verify_token(forge({"alg": alg, "kid": kid}, body, bytes(64)), ring.public_keys())


def test_hs256_signed_with_the_public_key_is_refused(ring, token):
    """Key confusion: an attacker HMACs with the public key a lenient verifier would use."""
    key = ring.keys[0]
    body = payload_of(token)
    raw = key.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (raw, pem, key.public_jwk()["x"].encode()):
        header = {"alg": "HS256", "kid": key.kid, "typ": "JWT"}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        # HS256's 32-byte MAC, and the MAC padded to an Ed25519 signature's 64 bytes.
        for signature in (mac, mac * 2):
            with pytest.raises(TokenInvalid):
                verify_token(f"{signing_input}.{b64(signature)}", ring.public_keys())


def test_any_other_algorithm_is_refused_even_when_its_signature_is_good(ring, token):
    body = payload_of(token)
    kid = ring.keys[0].kid
    ec_key = ec.generate_private_key(ec.SECP256R1())
    es256 = jwt.encode(body, ec_key, algorithm="ES256", headers={"kid": kid})
    hs256 = jwt.encode(
        body, "a-shared-secret-of-32-bytes-at-least!", algorithm="HS256", headers={"kid": kid}
    )
    for other in (es256, hs256):
        with pytest.raises(TokenInvalid, match="EdDSA only"):
            verify_token(other, ring.public_keys())


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "x5c"])
def test_headers_that_name_a_key_are_refused_even_on_a_good_signature(ring, name):
    key = ring.keys[0]
    value = (
        {"kty": "OKP", "crv": "Ed25519", "x": key.public_jwk()["x"]}
        if name == "jwk"
        else ["MIIB"]
        if name == "x5c"
        else "https://attacker.example/jwks.json"
    )
    token = jwt.encode(
        claims(iss="consent-service", iat=0, exp=2**40, jti="x"),
        key.private_key,
        algorithm="EdDSA",
        headers={"kid": key.kid, name: value},
    )
    with pytest.raises(TokenInvalid, match=name):
        verify_token(token, ring.public_keys())


def test_unknown_kid_is_refused(ring, token):
    stranger = generate_key()
    foreign = DecisionSigner(KeyRing((stranger,)), "consent-service", timedelta(days=1))
    with pytest.raises(TokenInvalid, match="Unknown key id"):
        verify_token(foreign.sign(claims(), utcnow())[0], ring.public_keys())
    # Our kid on a stranger's signature: the kid is known, the signature is not ours.
    body = payload_of(token)
    swapped = jwt.encode(
        body, stranger.private_key, algorithm="EdDSA", headers={"kid": ring.keys[0].kid}
    )
    with pytest.raises(TokenInvalid, match="altered"):
        verify_token(swapped, ring.public_keys())
    # No kid at all.
    bare = jwt.encode(body, ring.keys[0].private_key, algorithm="EdDSA")
    with pytest.raises(TokenInvalid, match="Unknown key id"):
        verify_token(bare, ring.public_keys())


def test_expired_token_is_refused(ring):
    signer = DecisionSigner(ring, "consent-service", timedelta(seconds=60))
    old, _ = signer.sign(claims(), utcnow() - timedelta(seconds=61))
    with pytest.raises(TokenInvalid, match="expired"):
        verify_token(old, ring.public_keys())


def test_wrong_audience_is_refused_when_an_audience_is_given(ring, token):
    verify_token(token, ring.public_keys())  # no audience asked: not checked
    with pytest.raises(TokenInvalid, match="another audience"):
        verify_token(token, ring.public_keys(), audience="another-provider")
    with pytest.raises(TokenInvalid, match="another issuer"):
        verify_token(token, ring.public_keys(), issuer="someone-else")


def test_missing_registered_claims_are_refused(ring):
    key = ring.keys[0]
    token = jwt.encode(
        {"sub": JOB, "decision": "allow"},
        key.private_key,
        algorithm="EdDSA",
        headers={"kid": key.kid},
    )
    with pytest.raises(TokenInvalid):
        verify_token(token, ring.public_keys())


def test_one_flipped_byte_anywhere_is_refused(ring, token):
    keys = ring.public_keys()
    verify_token(token, keys)
    for i in range(len(token)):
        for mask in (0x01, 0x02, 0x20):
            altered = token[:i] + chr(ord(token[i]) ^ mask) + token[i + 1 :]
            with pytest.raises(TokenInvalid):
                verify_token(altered, keys)


def test_malformed_input_is_refused_with_a_reason(ring, token):
    for bad in ("", "a.b", token + ".x", token + " ", " " + token, 42, None, "x" * 20000):
        with pytest.raises(TokenInvalid):
            verify_token(bad, ring.public_keys())


# ---------------------------------------------------------------------------- rotation
def test_rotation_signs_with_the_new_key_and_old_tokens_still_verify(ring, signer):
    old_token, _ = signer.sign(claims(), utcnow())
    rotated = service.rotate(ring)
    new_signer = DecisionSigner(rotated, "consent-service", timedelta(days=30))
    new_token, _ = new_signer.sign(claims(), utcnow())
    old_kid, new_kid = ring.keys[0].kid, rotated.keys[1].kid
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid != old_kid
    assert verify_token(old_token, rotated.public_keys())[1] == old_kid
    assert verify_token(new_token, rotated.public_keys())[1] == new_kid
    assert [k["kid"] for k in rotated.jwks()["keys"]] == [old_kid, new_kid]
    # The key set survives its JSON form (what the file or the setting holds).
    reread = service.parse_keyring(rotated.to_json())
    assert reread.signer(utcnow()).kid == new_kid
    assert verify_token(old_token, reread.public_keys())[1] == old_kid


def test_a_staged_key_is_published_at_once_and_signs_only_when_due(ring):
    now = utcnow()
    staged = service.rotate(ring, activate_in=600, now=now)
    new_kid = staged.keys[1].kid
    assert new_kid in {k["kid"] for k in staged.jwks()["keys"]}
    assert staged.signer(now).kid == ring.keys[0].kid
    assert staged.signer(now + timedelta(seconds=601)).kid == new_kid
    assert service.parse_keyring(staged.to_json()).signer(now).kid == ring.keys[0].kid


def test_a_retired_key_stops_signing_but_still_verifies(ring, signer):
    old_token, _ = signer.sign(claims(), utcnow())
    old_kid = ring.keys[0].kid
    retired = service.retire(service.rotate(ring), old_kid)
    assert retired.signer(utcnow()).kid != old_kid
    assert "d" not in json.loads(retired.to_json())["keys"][0]
    assert verify_token(old_token, retired.public_keys())[1] == old_kid
    removed = service.retire(retired, old_kid, remove=True)
    with pytest.raises(TokenInvalid, match="Unknown key id"):
        verify_token(old_token, removed.public_keys())
    with pytest.raises(KeyConfigError, match="no key that can sign"):
        service.retire(ring, old_kid)


# ---------------------------------------------------------------------------- configuration
def test_development_generates_keys_once_owner_only(tmp_path):
    settings = Settings(consent_service_home=tmp_path)
    first = service.load_keyring(settings)
    path = tmp_path / service.DEV_KEYS_FILE
    assert os.stat(path).st_mode & 0o777 == 0o600
    again = service.load_keyring(settings)
    assert [k.kid for k in again.keys] == [k.kid for k in first.keys]
    assert again.jwks() == first.jwks()


def test_production_needs_configured_keys(tmp_path):
    settings = Settings(consent_service_env="production", consent_service_home=tmp_path)
    with pytest.raises(InsecureSettings, match="DECISION_SIGNING_KEYS"):
        service.load_keyring(settings)
    assert not (tmp_path / service.DEV_KEYS_FILE).exists()


def test_keys_from_inline_json_or_a_file(tmp_path, ring):
    inline = Settings(consent_service_env="production", decision_signing_keys=ring.to_json())
    assert service.load_keyring(inline).jwks() == ring.jwks()
    path = tmp_path / "keys.json"
    service.save_keyring(path, ring)
    from_file = Settings(consent_service_env="production", decision_signing_keys=str(path))
    assert service.load_keyring(from_file).jwks() == ring.jwks()
    assert service.configured_keys_path(from_file) == path


def test_bad_key_sets_are_refused(ring):
    good = json.loads(ring.to_json())["keys"][0]
    other_x = generate_key().public_jwk()["x"]
    for bad in (
        "not json",
        "[]",
        json.dumps([{**good, "kid": ""}]),
        json.dumps([{**good, "crv": "X25519"}]),
        json.dumps([{**good, "x": other_x}]),  # x is not the public half of d
        json.dumps([good, good]),  # duplicate kid
        json.dumps([{k: v for k, v in good.items() if k != "d"}]),  # nothing can sign
    ):
        with pytest.raises(KeyConfigError):
            service.parse_keyring(bad)


def test_a_public_jwk_never_carries_the_private_part(ring):
    for entry in ring.jwks()["keys"]:
        assert set(entry) == {"kty", "crv", "x", "kid", "alg", "use"}
    private = Ed25519PrivateKey.generate()
    assert private  # the ring's own private key stays in to_json only
    assert "d" in json.loads(ring.to_json())["keys"][0]
