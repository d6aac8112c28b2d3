"""Providers and API keys: a key is shown once, stored as a SHA-256 hash with a short prefix."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlmodel import Session, col, select

from consent_service.errors import Conflict, InvalidRequest, NotFound
from consent_service.providers.models import ApiKey, Provider
from consent_service.timeutil import utcnow
from consent_service.vocabulary import ProviderStatus

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
