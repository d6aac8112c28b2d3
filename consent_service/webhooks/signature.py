"""Webhook signatures: HMAC-SHA256 over `timestamp + "." + body`, sent as
`Consent-Signature: t=<unix seconds>,v1=<hex>`. Standard library only, so a provider's receiver
can use `verify_signature` (also in `consent_service.client`) without the rest of the service."""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Consent-Signature"
DEFAULT_TOLERANCE = 300  # seconds: older (or further in the future) deliveries are replays


class SignatureError(ValueError):
    """The delivery is not authentic or not fresh; `str(error)` says why."""


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value for `body`, signed now (or at `timestamp`)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_digest(secret, t, body)}"


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes | str,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check a delivery on the receiving side; returns its timestamp or raises SignatureError.

    `body` must be the raw request body, byte for byte (not re-serialised JSON). A delivery
    signed more than `tolerance` seconds ago is refused as a replay; within that window, drop
    repeats by the delivery id (`Consent-Delivery` header, `id` in the body)."""
    if isinstance(body, str):
        body = body.encode()
    if not header or len(header) > 1000:
        raise SignatureError("missing or oversized signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed signature header")
        if key == "t":
            if not value.isdigit() or timestamp is not None:
                raise SignatureError("malformed signature timestamp")
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("the signature header needs t= and v1=")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("the signature timestamp is outside the tolerance (replayed?)")
    expected = _digest(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("the signature does not match")
    return timestamp
