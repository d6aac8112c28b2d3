"""AES-256-GCM envelopes: a fresh data key per record, wrapped by the KEK, bound to its row."""

from __future__ import annotations

import base64
import secrets

import pytest
from cryptography.exceptions import InvalidTag

from consent_service.crypto import Envelope, derive_key

PLAINTEXT = b"face template bytes " * 20
AAD = b"template:7:abc"


def test_roundtrip(envelope):
    ciphertext, wrapped = envelope.seal(PLAINTEXT, AAD)
    assert envelope.open(ciphertext, wrapped, AAD) == PLAINTEXT


def test_sealed_record_does_not_show_the_plaintext(envelope):
    ciphertext, wrapped = envelope.seal(PLAINTEXT, AAD)
    for blob in (ciphertext, wrapped):
        assert b"face template" not in blob
        assert PLAINTEXT[:16] not in blob


def test_each_seal_uses_a_fresh_data_key_and_nonce(envelope):
    first, second = envelope.seal(PLAINTEXT, AAD), envelope.seal(PLAINTEXT, AAD)
    assert first[0] != second[0]
    assert first[1] != second[1]


def test_other_associated_data_does_not_open(envelope):
    ciphertext, wrapped = envelope.seal(PLAINTEXT, AAD)
    with pytest.raises(InvalidTag):
        envelope.open(ciphertext, wrapped, b"template:8:abc")


def test_wrong_kek_does_not_open(envelope):
    ciphertext, wrapped = envelope.seal(PLAINTEXT, AAD)
    with pytest.raises(InvalidTag):
        Envelope(secrets.token_bytes(32)).open(ciphertext, wrapped, AAD)


@pytest.mark.parametrize("part", [0, 1])
@pytest.mark.parametrize("position", [0, 13, -1])
def test_any_flipped_byte_does_not_open(envelope, part, position):
    sealed = [bytearray(b) for b in envelope.seal(PLAINTEXT, AAD)]
    sealed[part][position] ^= 0x01
    with pytest.raises(InvalidTag):
        envelope.open(bytes(sealed[0]), bytes(sealed[1]), AAD)


def test_data_key_of_another_record_does_not_open_it(envelope):
    ciphertext, _ = envelope.seal(PLAINTEXT, AAD)
    _, other_wrapped = envelope.seal(b"another record", AAD)
    with pytest.raises(InvalidTag):
        envelope.open(ciphertext, other_wrapped, AAD)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_kek_must_be_32_bytes(size):
    with pytest.raises(ValueError, match="32 bytes"):
        Envelope(secrets.token_bytes(size))


def test_kek_from_base64_is_the_same_key():
    kek = secrets.token_bytes(32)
    ciphertext, wrapped = Envelope(kek).seal(PLAINTEXT, AAD)
    assert Envelope.from_b64(base64.b64encode(kek).decode()).open(ciphertext, wrapped, AAD) == (
        PLAINTEXT
    )


def test_derived_keys_are_stable_and_separate_per_purpose_and_secret():
    secret = secrets.token_bytes(32)
    audit = derive_key(secret, "audit-chain")
    assert len(audit) == 32
    assert derive_key(secret, "audit-chain") == audit
    assert derive_key(secret, "media-store") != audit
    assert derive_key(secrets.token_bytes(32), "audit-chain") != audit
    assert audit != secret
