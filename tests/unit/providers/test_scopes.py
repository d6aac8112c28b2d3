"""Scoped keys: the scopes a key is issued with, its expiry, rotation with an overlap window, and
the last use kept to the hour."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from consent_service.errors import ApiKeyExpired, Conflict, InvalidRequest, NotFound
from consent_service.providers import service as providers
from consent_service.providers.models import ApiKey
from consent_service.timeutil import as_utc, utcnow
from consent_service.vocabulary import Scope


@pytest.fixture
def provider(session):
    return providers.create_provider(session, "Acme Faces")


def _row(session, raw: str) -> ApiKey:
    return session.exec(select(ApiKey).where(ApiKey.prefix == providers.key_prefix(raw))).one()


def test_a_key_has_every_scope_unless_told_and_only_those_it_is_given(session, provider):
    everything = providers.issue_key(session, provider)
    reader = providers.issue_key(session, provider, "dash", [Scope.JOBS_READ])
    holder = providers.authenticate_key(session, everything)
    assert holder is not None and holder.scopes == frozenset(Scope)
    holder = providers.authenticate_key(session, reader)
    assert holder is not None and holder.provider.id == provider.id
    assert holder.allows(Scope.JOBS_READ) and not holder.allows(Scope.JOBS_WRITE)
    assert _row(session, reader).scopes == ["jobs:read"]


def test_a_key_needs_a_scope_and_a_future_expiry(session, provider):
    with pytest.raises(InvalidRequest, match="at least one scope"):
        providers.issue_key(session, provider, "none", [])
    with pytest.raises(InvalidRequest, match="future"):
        providers.issue_key(session, provider, "late", expires_at=utcnow() - timedelta(seconds=1))


def test_a_scope_stored_that_this_version_does_not_know_grants_nothing(session, provider):
    raw = providers.issue_key(session, provider, "x", [Scope.LABELS])
    _row(session, raw).scopes = ["labels", "jobs:delete"]
    holder = providers.authenticate_key(session, raw)
    assert holder is not None and holder.scopes == {Scope.LABELS}


def test_an_expired_key_says_so_to_its_holder_only(session, provider):
    raw = providers.issue_key(session, provider, "temp", expires_at=utcnow() + timedelta(hours=1))
    assert providers.authenticate_key(session, raw) is not None
    later = utcnow() + timedelta(hours=2)
    with pytest.raises(ApiKeyExpired, match="expired at"):
        providers.authenticate_key(session, raw, later)
    # The prefix with a wrong secret learns nothing: the same None as any bad key.
    forged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    assert providers.authenticate_key(session, forged, later) is None
    assert providers.key_state(_row(session, raw), later) == "expired"


def test_rotation_issues_a_successor_and_lets_the_old_key_work_for_the_overlap(session, provider):
    old_raw = providers.issue_key(
        session, provider, "render farm", [Scope.JOBS_WRITE, Scope.JOBS_READ]
    )
    now = utcnow()
    rotation = providers.rotate_key(
        session, provider, providers.key_prefix(old_raw), timedelta(hours=24), now
    )
    new = _row(session, rotation.raw)
    assert new.name == "render farm" and new.scopes == ["jobs:read", "jobs:write"]
    assert new.expires_at is None
    assert as_utc(rotation.old.expires_at) == now + timedelta(hours=24)
    # Both work during the overlap; after it only the successor does.
    assert providers.authenticate_key(session, old_raw, now + timedelta(hours=23)) is not None
    with pytest.raises(ApiKeyExpired):
        providers.authenticate_key(session, old_raw, now + timedelta(hours=24))
    assert providers.authenticate_key(session, rotation.raw, now + timedelta(days=30)) is not None


def test_rotation_never_extends_an_expiry_and_refuses_keys_that_no_longer_work(session, provider):
    soon = utcnow() + timedelta(hours=2)
    raw = providers.issue_key(session, provider, "temp", expires_at=soon)
    prefix = providers.key_prefix(raw)
    rotation = providers.rotate_key(session, provider, prefix, timedelta(hours=24))
    assert as_utc(rotation.old.expires_at) == soon  # not moved later
    # Zero overlap: it stops now; then it cannot be rotated again.
    other = providers.issue_key(session, provider, "b")
    providers.rotate_key(session, provider, providers.key_prefix(other), timedelta(0))
    with pytest.raises(Conflict, match="cannot be rotated"):
        providers.rotate_key(session, provider, providers.key_prefix(other), timedelta(hours=1))
    providers.revoke_key(session, provider, rotation.new_prefix)
    with pytest.raises(Conflict):
        providers.rotate_key(session, provider, rotation.new_prefix, timedelta(hours=1))
    with pytest.raises(InvalidRequest, match="overlap"):
        providers.rotate_key(session, provider, prefix, timedelta(days=31))
    with pytest.raises(NotFound):
        providers.rotate_key(session, provider, "00000000", timedelta(hours=1))


def test_another_providers_key_cannot_be_rotated(session, provider):
    other = providers.create_provider(session, "Globex")
    raw = providers.issue_key(session, other)
    with pytest.raises(NotFound):
        providers.rotate_key(session, provider, providers.key_prefix(raw), timedelta(hours=1))


def test_last_use_is_written_at_most_once_an_hour(session, provider):
    raw = providers.issue_key(session, provider)
    now = utcnow()
    providers.authenticate_key(session, raw, now)
    assert as_utc(_row(session, raw).last_used_at) == now
    providers.authenticate_key(session, raw, now + timedelta(minutes=59))
    assert as_utc(_row(session, raw).last_used_at) == now
    providers.authenticate_key(session, raw, now + timedelta(hours=1))
    assert as_utc(_row(session, raw).last_used_at) == now + timedelta(hours=1)
