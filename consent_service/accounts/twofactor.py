"""TOTP two-factor sign-in (RFC 6238, pyotp) with recovery codes. The secret is sealed with the
envelope like every other secret (AAD binds it to its account); each code works once (the last
time step used is kept), each recovery code too (only their SHA-256 digests are kept)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import pyotp
from sqlmodel import Session

from consent_service.accounts.models import User
from consent_service.crypto import Envelope, wrapped_key_id
from consent_service.errors import InvalidRequest
from consent_service.timeutil import utcnow

RECOVERY_CODES = 10
ISSUER = "Consent Service"


def totp_aad(user: User) -> bytes:
    return f"user-totp:{user.id}".encode()


def _digest(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").replace(" ", "").lower().encode()).hexdigest()


def _secret(envelope: Envelope, user: User) -> str | None:
    if user.totp_secret is None or user.totp_key is None:
        return None
    return envelope.open(user.totp_secret, user.totp_key, totp_aad(user)).decode()


def start_setup(session: Session, envelope: Envelope, user: User) -> str:
    """A new secret waiting to be confirmed (the account's factor is unchanged until then, so an
    enabled one cannot be replaced this way: `confirm_setup` refuses once enabled)."""
    if user.has_totp:
        raise InvalidRequest("Two-factor sign-in is already on.")
    secret = pyotp.random_base32()
    user.totp_secret, user.totp_key = envelope.seal(secret.encode(), totp_aad(user))
    user.totp_kek_id = wrapped_key_id(user.totp_key)
    session.add(user)
    session.flush()
    return secret


def pending_secret(envelope: Envelope, user: User) -> str | None:
    return None if user.has_totp else _secret(envelope, user)


def provisioning_uri(secret: str, user: User) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def _step_of(secret: str, code: str, last: int | None) -> int | None:
    """The time step `code` is valid for (this one or the one before or after), unless used."""
    code = (code or "").strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now = int(utcnow().timestamp()) // totp.interval
    for step in (now, now - 1, now + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and (last is None or step > last):
            return step
    return None


def confirm_setup(session: Session, envelope: Envelope, user: User, code: str) -> list[str]:
    """Turn the factor on with a first code from the app; returns the recovery codes (shown
    once: only their digests are kept)."""
    secret = pending_secret(envelope, user)
    step = _step_of(secret, code, None) if secret else None
    if step is None:
        raise InvalidRequest("That code is not right. Enter the 6 digits your app shows now.")
    codes = [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(RECOVERY_CODES)]
    user.totp_enabled_at, user.totp_last_step = utcnow(), step
    user.recovery_codes = [_digest(c) for c in codes]
    session.add(user)
    session.flush()
    return codes


def verify(session: Session, envelope: Envelope, user: User, code: str) -> bool:
    """A current TOTP code not used before, or an unused recovery code (then spent)."""
    secret = _secret(envelope, user) if user.has_totp else None
    if secret is None:
        return False
    step = _step_of(secret, code, user.totp_last_step)
    if step is not None:
        user.totp_last_step = step
        session.add(user)
        session.flush()
        return True
    digest = _digest(code or "")
    left = list(user.recovery_codes or [])
    for kept in left:
        if hmac.compare_digest(kept, digest):
            left.remove(kept)
            user.recovery_codes = left
            session.add(user)
            session.flush()
            return True
    return False


def disable(session: Session, user: User) -> None:
    user.totp_secret = user.totp_key = None
    user.totp_enabled_at = user.totp_last_step = None
    user.recovery_codes = None
    session.add(user)
    session.flush()
