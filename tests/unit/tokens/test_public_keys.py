"""The decision keys' public half: written beside the private file by everything that writes it,
world-readable and without a private part; loaded by the web without reading the private file."""

from __future__ import annotations

import json
import stat

import pytest

from consent_service.settings import InsecureSettings, Settings
from consent_service.tokens import service
from consent_service.tokens.service import KeyConfigError, KeyRing, PublicKeySet, generate_key


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def production(**values) -> Settings:
    return Settings(consent_service_env="production", **values)


def test_saving_the_key_set_writes_its_public_half_beside_it(tmp_path):
    path = tmp_path / "decision-keys.json"
    ring = KeyRing((generate_key(),))
    service.save_keyring(path, ring)
    public = tmp_path / "decision-keys.public.json"
    assert service.public_file_for(path) == public
    assert (mode(path), mode(public)) == (0o600, 0o644)
    document = json.loads(public.read_text())
    assert document == ring.jwks()
    assert all("d" not in key for key in document["keys"])
    assert service.parse_public_keys(public.read_text()).jwks() == ring.jwks()


def test_a_rotation_and_a_retirement_rewrite_the_public_file(tmp_path):
    path = tmp_path / "keys.json"
    ring = KeyRing((generate_key(),))
    service.save_keyring(path, ring)
    rotated = service.rotate(ring)
    service.save_keyring(path, rotated)
    public = service.public_file_for(path)
    assert public.name == "keys.public.json"
    kids = [k["kid"] for k in json.loads(public.read_text())["keys"]]
    assert kids == [k.kid for k in rotated.keys]
    removed = service.retire(rotated, ring.keys[0].kid, remove=True)
    service.save_keyring(path, removed)
    assert [k["kid"] for k in json.loads(public.read_text())["keys"]] == [rotated.keys[1].kid]


def test_a_private_key_set_given_as_the_public_one_is_refused():
    ring = KeyRing((generate_key(),))
    with pytest.raises(KeyConfigError, match="holds private keys"):
        service.parse_public_keys(ring.to_json())
    with pytest.raises(KeyConfigError, match="no private part"):
        PublicKeySet(ring.keys)
    with pytest.raises(KeyConfigError, match="at least one key"):
        service.parse_public_keys('{"keys": []}')


def test_production_loads_the_public_file_with_the_private_one_absent(tmp_path):
    path = tmp_path / "decision-keys.json"
    ring = KeyRing((generate_key(),))
    service.save_keyring(path, ring)
    path.unlink()  # the web host has only the public file
    settings = production(decision_signing_keys=str(path), consent_service_home=tmp_path)
    assert service.load_public_keys(settings).jwks() == ring.jwks()
    with pytest.raises(KeyConfigError):  # what a worker would need is not there
        service.load_keyring(settings)


def test_production_public_keys_inline_or_in_a_file_of_their_own(tmp_path):
    ring = KeyRing((generate_key(),))
    inline = production(decision_public_keys=ring.public().to_json(indent=None))
    assert service.load_public_keys(inline).jwks() == ring.jwks()
    elsewhere = tmp_path / "jwks.json"
    service.save_public_keys(elsewhere, ring.public())
    named = production(decision_public_keys=str(elsewhere))
    assert service.public_keys_path(named) == elsewhere
    assert service.load_public_keys(named).jwks() == ring.jwks()


def test_production_without_public_keys_names_the_setting(tmp_path):
    ring = KeyRing((generate_key(),))
    for settings in (
        production(consent_service_home=tmp_path),
        production(decision_signing_keys=ring.to_json(indent=None)),  # inline: no file beside
    ):
        with pytest.raises(InsecureSettings, match="DECISION_PUBLIC_KEYS"):
            service.load_public_keys(settings)
    missing = production(decision_signing_keys=str(tmp_path / "absent.json"))
    with pytest.raises(KeyConfigError, match="tokens public-keys"):
        service.load_public_keys(missing)
    assert not any(tmp_path.iterdir())  # production generates nothing


def test_development_generates_the_pair_and_completes_an_older_home(tmp_path):
    settings = Settings(consent_service_home=tmp_path)
    public = service.load_public_keys(settings)
    private = tmp_path / service.DEV_KEYS_FILE
    assert public.jwks() == service.load_keyring(settings).jwks()
    assert mode(private) == 0o600
    # A home from before the public file: its public half is written from the private set.
    service.public_file_for(private).unlink()
    assert service.load_public_keys(settings).jwks() == public.jwks()
    assert mode(service.public_file_for(private)) == 0o644
