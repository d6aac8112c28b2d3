"""Provider API keys: shown once, stored as a hash and a prefix, and every bad key refused alike."""

from __future__ import annotations

import pytest
from sqlmodel import select

from consent_service.errors import Conflict, InvalidRequest
from consent_service.providers import service as providers
from consent_service.providers.models import ApiKey


@pytest.fixture
def provider(session):
    return providers.create_provider(session, "Acme Faces")


@pytest.fixture
def key(session, provider):
    raw = providers.issue_key(session, provider, name="ci")
    session.commit()
    return raw


def _dump(engine) -> str:
    raw = engine.raw_connection()
    try:
        return "\n".join(raw.driver_connection.iterdump())
    finally:
        raw.close()


def test_key_plaintext_is_not_stored_only_a_hash_and_prefix(engine, reopen, key):
    with reopen() as s:
        row = s.exec(select(ApiKey)).one()
    secret = key.split("_", 2)[2]
    assert len(secret) >= 40
    for value in row.model_dump().values():
        assert key not in str(value)
        assert secret not in str(value)
    assert key.startswith(f"cs_{row.prefix}_")
    dump = _dump(engine)
    assert row.prefix in dump  # the dump does show the row...
    assert key not in dump  # ...but neither the key nor its secret part
    assert secret not in dump


def test_each_key_is_different(session, provider, key):
    assert providers.issue_key(session, provider) != key


def test_right_key_names_its_provider(reopen, provider, key):
    with reopen() as s:
        found = providers.authenticate_key(s, key)
    assert found is not None
    assert found.provider.id == provider.id


def test_each_key_names_its_own_provider(session, provider, key):
    other = providers.create_provider(session, "Other Pixels")
    other_key = providers.issue_key(session, other)
    assert providers.authenticate_key(session, other_key).provider.id == other.id
    assert providers.authenticate_key(session, key).provider.id == provider.id


def _variants(key: str) -> dict[str, str | None]:
    prefix = key.split("_", 2)[1]
    return {
        "none": None,
        "empty": "",
        "scheme only": "cs_",
        "bearer": f"Bearer {key}",
        "leading space": f" {key}",
        "truncated": key[:-1],
        "half": key[: len(key) // 2],
        "prefix only": f"cs_{prefix}",
        "extended": key + "A",
        "upper case": key.upper(),
        "other secret, same prefix": f"cs_{prefix}_" + "A" * 43,
        "unknown prefix": "cs_00000000_" + key.split("_", 2)[2],
        "no scheme": key[3:],
        "very long": key + "A" * 500,
        "non ascii": "cs_ünïcødé_密钥",
    }


@pytest.mark.parametrize("variant", list(_variants("cs_12345678_" + "x" * 43)))
def test_bad_keys_are_refused(session, key, variant):
    assert providers.authenticate_key(session, _variants(key)[variant]) is None
    assert providers.authenticate_key(session, key) is not None  # the real one still works


def test_revoked_key_is_refused_and_the_providers_other_keys_still_work(session, provider, key):
    spare = providers.issue_key(session, provider)
    providers.revoke_key(session, provider, key.split("_", 2)[1])
    session.commit()
    assert providers.authenticate_key(session, key) is None
    assert providers.authenticate_key(session, spare).provider.id == provider.id


def test_key_of_a_suspended_provider_is_refused(session, provider, key):
    provider.status = "suspended"
    session.commit()
    assert providers.authenticate_key(session, key) is None


def test_provider_names_are_unique_and_required(session, provider):
    with pytest.raises(Conflict):
        providers.create_provider(session, "Acme Faces")
    with pytest.raises(InvalidRequest):
        providers.create_provider(session, "   ")
