"""Providers and API keys (a key is shown once, stored as a SHA-256 hash with a short prefix,
with its scopes and an optional expiry; rotation issues a successor and lets the old key live
on for an overlap window), and each provider's minimum assurance per operation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from consent_service.audit import service as audit
from consent_service.crypto import KeySource
from consent_service.errors import ApiKeyExpired, Conflict, InvalidRequest, NotFound
from consent_service.providers.models import (
    ApiKey,
    AssuranceMinimum,
    Provider,
    ProviderIdentity,
)
from consent_service.timeutil import as_utc, utcnow
from consent_service.vocabulary import Assurance, Operation, ProviderStatus, Scope

KEY_PREFIX = "cs_"
ALL_SCOPES = frozenset(Scope)
# `last_used_at` is written at most once per key per this long: often enough to tell whether a
# rotated key is still in use, rarely enough that reading the API does not write on every call.
LAST_USED_RESOLUTION = timedelta(hours=1)
# The longest a rotated key may go on working beside its successor.
MAX_ROTATION_OVERLAP = timedelta(days=30)


def _hash(raw: str) -> str:
    # Keys carry 256 random bits, so a plain digest is enough (no password stretching needed).
    return hashlib.sha256(raw.encode()).hexdigest()


def create_provider(session: Session, name: str) -> Provider:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidRequest("A provider needs a name of 1 to 200 characters.")
    if session.exec(select(Provider).where(Provider.name == name)).first():
        raise Conflict("A provider named %(name)s already exists.", name=repr(name))
    provider = Provider(name=name)
    session.add(provider)
    session.flush()
    return provider


def find_provider(session: Session, name: str) -> Provider:
    provider = session.exec(select(Provider).where(Provider.name == name)).first()
    if provider is None:
        raise NotFound("No provider named %(name)s.", name=repr(name))
    return provider


def key_prefix(raw: str) -> str:
    """The prefix that names a raw key (`cs_<prefix>_<secret>`) in lists, audits and URLs."""
    return raw[len(KEY_PREFIX) :].split("_", 1)[0]


def issue_key(
    session: Session,
    provider: Provider,
    name: str = "",
    scopes: Iterable[Scope] = ALL_SCOPES,
    expires_at: datetime | None = None,
) -> str:
    """Create an API key allowed `scopes` (every scope unless told), working until `expires_at`
    (None: until revoked), and return it; only its hash is kept."""
    chosen = sorted({Scope(s).value for s in scopes})
    if not chosen:
        raise InvalidRequest("Choose at least one scope for the key.")
    if expires_at is not None and as_utc(expires_at) <= utcnow():
        raise InvalidRequest("A key's expiry must be in the future.")
    prefix = secrets.token_hex(4)
    raw = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    session.add(
        ApiKey(
            provider_id=provider.id,
            prefix=prefix,
            key_hash=_hash(raw),
            name=name,
            scopes=chosen,
            expires_at=expires_at,
        )
    )
    session.flush()
    return raw


@dataclass(frozen=True)
class KeyHolder:
    """Who a request's key speaks for (the API's `g.provider`), and what it may do: plain
    values, not ORM entities, since every API request builds one."""

    provider: ProviderIdentity
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


_KNOWN_SCOPES = {s.value: s for s in Scope}


def known_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """The scopes among stored values; one a later version no longer knows grants nothing."""
    return frozenset(_KNOWN_SCOPES[v] for v in values if v in _KNOWN_SCOPES)


def key_expired(expires_at: datetime | None, now: datetime) -> bool:
    """Whether a key with this expiry (None: none) no longer works at `now`."""
    return expires_at is not None and as_utc(expires_at) <= now


def key_state(key: ApiKey, now: datetime) -> str:
    """`revoked`, `expired` or `active`: whether the API accepts the key now, and if not why."""
    if key.revoked_at is not None:
        return "revoked"
    return "expired" if key_expired(key.expires_at, now) else "active"


# The key and its provider in one row, a Core statement built once (a bound prefix): every API
# request starts here, so no ORM entities are built (they cost a quarter of a poll's CPU). A
# revoked key and a provider not active find no row, as an unknown prefix does.
_key, _provider = ApiKey.__table__, Provider.__table__  # type: ignore[attr-defined]
_KEY_AND_PROVIDER = (
    sa.select(
        _key.c.key_hash,
        _key.c.scopes,
        _key.c.expires_at,
        _key.c.last_used_at,
        _key.c.provider_id,
        _provider.c.name.label("provider_name"),
    )
    .select_from(_key.join(_provider, _provider.c.id == _key.c.provider_id))
    .where(
        _key.c.prefix == sa.bindparam("prefix"),
        _key.c.revoked_at.is_(None),
        _provider.c.status == ProviderStatus.ACTIVE.value,
    )
)


def authenticate_key(
    session: Session, raw: str | None, now: datetime | None = None
) -> KeyHolder | None:
    """The key's provider and scopes, or None for unknown, revoked or malformed keys alike (and
    for a provider that is not active). A genuine key past its expiry raises `ApiKeyExpired`, so
    its holder learns why (only the holder of the whole key learns it)."""
    if not raw or not raw.startswith(KEY_PREFIX) or len(raw) > 200:
        return None
    now = now or utcnow()
    prefix = key_prefix(raw)
    session.flush()  # read what this session changed, as an ORM query's autoflush would
    row = session.connection().execute(_KEY_AND_PROVIDER, {"prefix": prefix}).first()
    if row is None or not hmac.compare_digest(row.key_hash, _hash(raw)):
        return None
    if key_expired(row.expires_at, now):
        raise ApiKeyExpired(
            "This API key expired at %(at)s UTC: use the key that replaced it, or ask the "
            "provider's admin for a new one.",
            at=as_utc(row.expires_at).strftime("%Y-%m-%d %H:%M"),
        )
    if row.last_used_at is None or now - as_utc(row.last_used_at) >= LAST_USED_RESOLUTION:
        # An ORM-enabled UPDATE, so a key this session holds as an entity sees it too.
        session.exec(sa.update(ApiKey).where(col(ApiKey.prefix) == prefix).values(last_used_at=now))
    return KeyHolder(ProviderIdentity(row.provider_id, row.provider_name), known_scopes(row.scopes))


def list_keys(session: Session, provider: Provider) -> list[ApiKey]:
    """The provider's keys, newest first (hashes stay in the database)."""
    return list(
        session.exec(
            select(ApiKey)
            .where(ApiKey.provider_id == provider.id)
            .order_by(col(ApiKey.created_at).desc(), col(ApiKey.id).desc())
        )
    )


def _own_key(session: Session, provider: Provider, prefix: str) -> ApiKey:
    key = session.exec(
        select(ApiKey).where(ApiKey.provider_id == provider.id, ApiKey.prefix == prefix)
    ).first()
    if key is None:
        raise NotFound("No such API key.")
    return key


def revoke_key(session: Session, provider: Provider, prefix: str) -> None:
    key = _own_key(session, provider, prefix)
    key.revoked_at = key.revoked_at or utcnow()
    session.add(key)


@dataclass(frozen=True)
class Rotation:
    raw: str  # the successor, shown once
    old: ApiKey  # now expiring at the end of the overlap
    new_prefix: str


def rotate_key(
    session: Session,
    provider: Provider,
    prefix: str,
    overlap: timedelta,
    now: datetime | None = None,
) -> Rotation:
    """Issue a successor to a working key, with the same name and scopes (no expiry), and let
    the old key work on for `overlap` (zero: it stops now) while its users switch over. The old
    key's expiry only ever moves earlier. A revoked or expired key cannot be rotated: issue a new
    one instead."""
    now = now or utcnow()
    if overlap < timedelta(0) or overlap > MAX_ROTATION_OVERLAP:
        raise InvalidRequest(
            "The overlap must be between 0 and %(hours)d hours.",
            hours=MAX_ROTATION_OVERLAP // timedelta(hours=1),
        )
    old = _own_key(session, provider, prefix)
    if old.revoked_at is not None or key_expired(old.expires_at, now):
        raise Conflict(
            "Key %(prefix)s… no longer works, so it cannot be rotated: create a new key instead.",
            prefix=prefix,
        )
    raw = issue_key(session, provider, old.name, known_scopes(old.scopes))
    end = now + overlap
    if old.expires_at is None or as_utc(old.expires_at) > end:
        old.expires_at = end
        session.add(old)
    session.flush()
    return Rotation(raw=raw, old=old, new_prefix=key_prefix(raw))


# ---------------------------------------------------------------------------- assurance minimums
def assurance_minimums(session: Session, provider_id: str) -> dict[Operation, Assurance]:
    """The provider's minimum assurance per operation; an operation missing asks for none."""
    rows = session.exec(select(AssuranceMinimum).where(AssuranceMinimum.provider_id == provider_id))
    return {Operation(r.operation): Assurance(r.minimum) for r in rows}


def assurance_minimum(session: Session, provider_id: str, operation: Operation) -> Assurance | None:
    """The least assurance the provider requires for `operation`, or None (any level)."""
    row = session.get(AssuranceMinimum, (provider_id, operation.value))
    return Assurance(row.minimum) if row is not None else None


def set_assurance_minimums(
    session: Session,
    audit_key: KeySource,
    provider_id: str,
    minimums: Mapping[Operation, Assurance | None],
    actor: str,
) -> dict[Operation, Assurance]:
    """Set the minimum of each operation named (None removes it: any level); operations not
    named keep theirs. Audited when something changed. Returns the provider's minimums."""
    before = assurance_minimums(session, provider_id)
    for operation, minimum in minimums.items():
        row = session.get(AssuranceMinimum, (provider_id, operation.value))
        if minimum is None:
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(
                AssuranceMinimum(
                    provider_id=provider_id, operation=operation.value, minimum=minimum.value
                )
            )
        elif row.minimum != minimum.value:
            row.minimum, row.updated_at = minimum.value, utcnow()
            session.add(row)
    session.flush()
    after = assurance_minimums(session, provider_id)
    if after != before:
        audit.append(
            session,
            audit_key,
            "provider.assurance_minimums_changed",
            actor,
            {
                "provider_id": provider_id,
                "from": {o.value: a.value for o, a in sorted(before.items())},
                "to": {o.value: a.value for o, a in sorted(after.items())},
            },
        )
    return after
