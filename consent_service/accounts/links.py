"""Signed, expiring links mailed to an account's address: verify it, reset the password, accept
an invitation, stop the daily digest of notices. Each purpose has its own salt, so a link made
for one is refused by the others; what a link may do once is bound into it (the address
verified, a digest of the password hash a reset replaces, an invitation's id), so it stops
working once used (switching the digest off does no harm done twice)."""

from __future__ import annotations

import hashlib

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from consent_service.errors import InvalidRequest

VERIFY, RESET, INVITE = "verify-email", "reset-password", "invitation"
DIGEST_OFF = "notice-digest-off"
# A digest may be read long after it was sent, and its link can only switch the digest off (the
# account page switches it back on), so it lives long.
DIGEST_OFF_MAX_AGE = 400 * 24 * 3600


def _serializer(secret: str, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=f"consent-service.accounts.{purpose}")


def sign(secret: str, purpose: str, payload: dict) -> str:
    return _serializer(secret, purpose).dumps(payload)


def load(secret: str, purpose: str, token: str, max_age: int) -> dict:
    """The payload of a link made for `purpose` no older than `max_age` seconds; InvalidRequest
    (one message for forged, expired and foreign links) otherwise."""
    try:
        payload = _serializer(secret, purpose).loads(token, max_age=max_age)
    except (SignatureExpired, BadSignature):
        raise InvalidRequest("This link is not valid any more. Ask for a new one.") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("This link is not valid any more. Ask for a new one.")
    return payload


def password_stamp(password_hash: str) -> str:
    """Changes whenever the password does: a reset link dies with the password it replaces."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]
