"""The keyring: one key per purpose, versions named by key ids, records readable under every
version held, rotations followed by other processes, pseudonyms that never change."""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from datetime import timedelta

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from consent_service.crypto import (
    LEGACY_KEY_ID,
    Envelope,
    StaticKeys,
    UnknownKey,
    derive_key,
    wrapped_key_id,
)
from consent_service.keyring import (
    SYMMETRIC,
    Keyring,
    KeyringError,
    KeyVersion,
    LocalKeyProvider,
    Pseudonyms,
    Purpose,
    key_set_json,
    keyring_for,
    new_version,
)
from consent_service.settings import InsecureSettings, Settings
from consent_service.timeutil import utcnow

AAD = b"template:7:abc"
ZERO = base64.b64encode(bytes(32)).decode()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _legacy_seal(kek: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """A record as the envelope wrote it before key ids (nonce + wrapped key, no header)."""
    dek = AESGCM.generate_key(bit_length=256)
    n1, n2 = os.urandom(12), os.urandom(12)
    return n2 + AESGCM(dek).encrypt(n2, plaintext, aad), n1 + AESGCM(kek).encrypt(n1, dek, aad)


# ---------------------------------------------------------------------------- envelopes
def test_a_record_names_its_kek_and_opens_under_any_version_held():
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    ciphertext, wrapped = Envelope(StaticKeys({"a": old}, "a")).seal(b"face", AAD)
    assert wrapped_key_id(wrapped) == "a"
    both = Envelope(StaticKeys({"a": old, "b": new}, "b"))
    assert both.open(ciphertext, wrapped, AAD) == b"face"
    with pytest.raises(UnknownKey):
        Envelope(StaticKeys({"b": new}, "b")).open(ciphertext, wrapped, AAD)


def test_rewrap_moves_the_data_key_to_the_primary_kek_and_keeps_the_ciphertext():
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    ciphertext, wrapped = Envelope(StaticKeys({"a": old}, "a")).seal(b"face", AAD)
    both = Envelope(StaticKeys({"a": old, "b": new}, "b"))
    moved = both.rewrap(wrapped, AAD)
    assert moved is not None and wrapped_key_id(moved) == "b"
    assert both.rewrap(moved, AAD) is None  # already under the primary
    # Only the new KEK is needed now: the old one can be retired.
    assert Envelope(StaticKeys({"b": new}, "b")).open(ciphertext, moved, AAD) == b"face"
    with pytest.raises(InvalidTag):  # still bound to its row
        both.rewrap(wrapped, b"template:8:abc")


def test_records_sealed_before_key_ids_open_as_v0():
    kek = secrets.token_bytes(32)
    ciphertext, wrapped = _legacy_seal(kek, b"face", AAD)
    assert wrapped_key_id(wrapped) == LEGACY_KEY_ID
    envelope = Envelope(StaticKeys({LEGACY_KEY_ID: kek, "new": secrets.token_bytes(32)}, "new"))
    assert envelope.open(ciphertext, wrapped, AAD) == b"face"
    rewrapped = envelope.rewrap(wrapped, AAD)
    assert rewrapped is not None and wrapped_key_id(rewrapped) == "new"
    assert envelope.open(ciphertext, rewrapped, AAD) == b"face"


def test_a_changed_key_id_does_not_open():
    keys = StaticKeys({"a": secrets.token_bytes(32), "b": secrets.token_bytes(32)}, "a")
    ciphertext, wrapped = Envelope(keys).seal(b"face", AAD)
    forged = wrapped.replace(b"\x01a", b"\x01b", 1)
    with pytest.raises(InvalidTag):
        Envelope(keys).open(ciphertext, forged, AAD)


# ---------------------------------------------------------------------------- key files
def _provider(tmp_path, create=True, **inline) -> LocalKeyProvider:
    return LocalKeyProvider(tmp_path / "keys", {Purpose(k): v for k, v in inline.items()}, create)


def test_development_creates_one_owner_only_key_per_purpose_derived_from_nothing(tmp_path):
    keyring = Keyring(_provider(tmp_path))
    secrets_seen = set()
    for purpose in SYMMETRIC:
        version = keyring.primary(purpose)
        assert len(version.secret) == 32
        secrets_seen.add(version.secret)
        path = tmp_path / "keys" / f"{purpose.value}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secrets_seen) == len(SYMMETRIC)


def test_production_refuses_to_start_without_keys_and_names_them(tmp_path):
    keyring = Keyring(_provider(tmp_path, create=False))
    with pytest.raises(InsecureSettings) as caught:
        keyring.check()
    for purpose in SYMMETRIC:
        assert purpose.value in str(caught.value)


def test_template_kek_of_before_the_keyring_is_version_v0_of_every_purpose(tmp_path):
    kek = secrets.token_bytes(32)
    keyring = Keyring(_provider(tmp_path, create=False), template_kek=kek)
    keyring.check()
    assert keyring.key(Purpose.TEMPLATE_KEK, LEGACY_KEY_ID) == kek
    # The keys the service derived before: old audit entries, media and references still check.
    assert keyring.key(Purpose.AUDIT_MAC, "v0") == derive_key(kek, "audit-chain")
    assert keyring.key(Purpose.MEDIA, "v0") == derive_key(kek, "media-store")
    assert keyring.key(Purpose.PSEUDONYMS, "v0") == derive_key(kek, "subject-pseudonyms")


def test_a_rotation_keeps_every_version_and_writes_v0_into_the_key_set(tmp_path):
    kek = secrets.token_bytes(32)
    keyring = Keyring(_provider(tmp_path, create=False), template_kek=kek)
    new = keyring.rotate(Purpose.AUDIT_MAC)
    assert keyring.primary(Purpose.AUDIT_MAC).kid == new.kid
    # TEMPLATE_KEK can go: the derived v0 is in the file now.
    alone = Keyring(_provider(tmp_path, create=False))
    assert [v.kid for v in alone.versions(Purpose.AUDIT_MAC)] == ["v0", new.kid]
    assert alone.key(Purpose.AUDIT_MAC, "v0") == derive_key(kek, "audit-chain")


def test_another_process_follows_a_rotation_within_the_refresh_and_at_once_for_a_new_id(
    tmp_path,
):
    clock = Clock()
    worker = Keyring(_provider(tmp_path), refresh=5.0, clock=clock)
    first = worker.primary(Purpose.TEMPLATE_KEK)
    operator = Keyring(_provider(tmp_path))
    second = operator.rotate(Purpose.TEMPLATE_KEK)
    assert worker.primary(Purpose.TEMPLATE_KEK) == first  # cached until the refresh
    assert worker.key(Purpose.TEMPLATE_KEK, second.kid) == second.secret  # a miss reads again
    clock.now += 5.0
    assert worker.primary(Purpose.TEMPLATE_KEK).kid == second.kid


def test_keys_from_the_environment_are_read_but_not_rotated_here(tmp_path):
    given = key_set_json([new_version()])
    keyring = Keyring(_provider(tmp_path, create=False, **{"media": given}))
    assert keyring.primary(Purpose.MEDIA).kid == json.loads(given)["keys"][0]["kid"]
    with pytest.raises(KeyringError, match="KEYRING_MEDIA"):
        keyring.rotate(Purpose.MEDIA)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"keys": [{"kid": "a", "key": "c2hvcnQ="}]}',
        json.dumps({"keys": [{"kid": "a", "key": ZERO}, {"kid": "a", "key": ZERO}]}),
    ],
)
def test_a_broken_key_set_is_refused(tmp_path, text):
    with pytest.raises(KeyringError):
        Keyring(_provider(tmp_path, create=False, **{"audit-mac": text})).check()


def test_settings_name_the_folder_and_the_refresh(tmp_path):
    settings = Settings(consent_service_home=tmp_path, keyring_refresh_interval=2.5)
    keyring = keyring_for(settings, None)
    assert keyring.refresh == 2.5
    keyring.check()
    assert (tmp_path / "keys" / "template-kek.json").exists()


# ---------------------------------------------------------------------------- pseudonyms
def test_pseudonyms_never_change_for_a_subject_and_new_subjects_get_the_new_key(tmp_path):
    keyring = Keyring(_provider(tmp_path, create=False), template_kek=secrets.token_bytes(32))
    pseudonyms = Pseudonyms(lambda: keyring.versions(Purpose.PSEUDONYMS))
    before = utcnow() - timedelta(days=30)
    ref = pseudonyms.ref("provider-1", "subject-a", before)
    new = keyring.rotate(Purpose.PSEUDONYMS)
    assert pseudonyms.ref("provider-1", "subject-a", before) == ref
    # A subject created after the rotation has settled is under the new version.
    later = utcnow() + timedelta(seconds=2 * keyring.refresh + 2)
    assert pseudonyms.version_for(later).kid == new.kid
    assert pseudonyms.ref("provider-1", "subject-b", later) != pseudonyms.ref(
        "provider-1", "subject-b", before
    )
    # Still one reference per provider: unlinkable across providers.
    assert pseudonyms.ref("provider-2", "subject-a", before) != ref


def test_a_subject_created_during_the_grace_keeps_the_old_key():
    old = KeyVersion("v0", b"o" * 32)
    now = utcnow()
    new = KeyVersion("n", b"n" * 32, now.isoformat(), (now + timedelta(seconds=11)).isoformat())
    pseudonyms = Pseudonyms(lambda: [old, new])
    assert pseudonyms.version_for(now + timedelta(seconds=5)).kid == "v0"
    assert pseudonyms.version_for(now + timedelta(seconds=12)).kid == "n"
