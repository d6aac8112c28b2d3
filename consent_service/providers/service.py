"""Providers and API keys (a key is shown once, stored as a SHA-256 hash with a short prefix),
and each provider's minimum assurance per operation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from sqlmodel import Session, col, select

from consent_service.audit import service as audit
from consent_service.crypto import KeySource
from consent_service.errors import Conflict, InvalidRequest, NotFound
from consent_service.providers.models import ApiKey, AssuranceMinimum, Provider
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Assurance, Operation, ProviderStatus

KEY_PREFIX = "cs_"


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


def issue_key(session: Session, provider: Provider, name: str = "") -> str:
    """Create an API key and return it; only its hash is kept."""
    prefix = secrets.token_hex(4)
    raw = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    session.add(ApiKey(provider_id=provider.id, prefix=prefix, key_hash=_hash(raw), name=name))
    session.flush()
    return raw


def authenticate_key(session: Session, raw: str | None) -> Provider | None:
    """The provider a key belongs to, or None for unknown, revoked or malformed keys alike."""
    if not raw or not raw.startswith(KEY_PREFIX) or len(raw) > 200:
        return None
    prefix = raw[len(KEY_PREFIX) :].split("_", 1)[0]
    # The key and its provider in one query: every API request starts here.
    row = session.exec(
        select(ApiKey, Provider)
        .join(Provider, col(Provider.id) == ApiKey.provider_id)
        .where(ApiKey.prefix == prefix)
    ).first()
    if row is None:
        return None
    key, provider = row
    if key.revoked_at is not None or not hmac.compare_digest(key.key_hash, _hash(raw)):
        return None
    return provider if provider.status == ProviderStatus.ACTIVE else None


def revoke_key(session: Session, provider: Provider, prefix: str) -> None:
    key = session.exec(
        select(ApiKey).where(ApiKey.provider_id == provider.id, ApiKey.prefix == prefix)
    ).first()
    if key is None:
        raise NotFound("No such API key.")
    key.revoked_at = key.revoked_at or utcnow()


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
