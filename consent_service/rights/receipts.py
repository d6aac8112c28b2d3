"""Signed consent receipts (a worker's work; the web only reads them): each grant version's
receipt (`consent.receipts.build_receipt`) signed as a compact JWS under the decision key set
with a type of its own (`consent-receipt+jwt`: never taken for a decision token, nor one for
it), kept once, verified by anyone against the published keys; and the sweep that signs those
still missing. Here, above both `consent` and `tokens`, which are peers."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from consent_service import db
from consent_service.accounts.models import Subject
from consent_service.consent.models import ConsentGrant
from consent_service.consent.receipts import (
    KANTARA_VERSION,
    SIGN_RECEIPT,
    Controller,
    build_receipt,
)
from consent_service.errors import TokenInvalid
from consent_service.providers.models import Provider
from consent_service.rights.models import ConsentReceipt
from consent_service.rows import row_id
from consent_service.tokens.service import KeyRing, sign_document, verify_document

RECEIPT_TYP = "consent-receipt+jwt"
SWEEP_RECEIPTS = "receipts.sweep"


def sign_receipt(
    content: Mapping[str, Any], keys: KeyRing, issuer: str, now: datetime
) -> tuple[str, str]:
    """The receipt as a compact JWS: `content` with `iss`, `iat` and `jti` (the receipt id), typ
    `consent-receipt+jwt`, under the decision key that signs at `now`: (jws, kid)."""
    payload = {
        "iss": issuer,
        "iat": int(now.timestamp()),
        "jti": content["consentReceiptID"],
        **content,
    }
    return sign_document(payload, keys, RECEIPT_TYP, now)


def verify_receipt(
    jws: Any, public_keys: Mapping[str, Ed25519PublicKey]
) -> tuple[dict[str, Any], str]:
    """The content and kid of a receipt signed by this service; else TokenInvalid saying why
    (another key, another typ such as a decision token's, an altered byte)."""
    payload, kid = verify_document(jws, public_keys, RECEIPT_TYP, "A consent receipt")
    if payload.get("version") != KANTARA_VERSION or "consentReceiptID" not in payload:
        raise TokenInvalid("The signed document is not a consent receipt.")
    return payload, kid


def receipt_content(jws: str) -> dict[str, Any]:
    """What a stored receipt says: its JWS payload, byte for byte what was signed (our own row,
    so not verified here; `verify_receipt` is for a receipt that comes from outside)."""
    try:
        part = jws.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError, binascii.Error) as exc:
        raise ValueError(f"A stored receipt is not a compact JWS: {exc}") from None


def stored_receipt(session: Session, row: ConsentGrant) -> ConsentReceipt | None:
    return session.exec(
        select(ConsentReceipt).where(ConsentReceipt.grant_row_id == row_id(row))
    ).first()


def provider_names(session: Session) -> dict[str, str]:
    return {p.id: p.name for p in session.exec(select(Provider))}


def sign_pending(
    session: Session,
    grant_row_id: int,
    keys: KeyRing,
    issuer: str,
    controller: Controller,
    base_url: str,
    now: datetime,
) -> ConsentReceipt | None:
    """Sign and keep the receipt of one grant version, once: the receipt already kept (a task
    run twice) is returned as it is; None when the version is gone."""
    row = session.get(ConsentGrant, grant_row_id)
    if row is None:
        return None
    kept = stored_receipt(session, row)
    if kept is not None:
        return kept
    subject = session.get(Subject, row.subject_id)
    if subject is None:
        return None
    content = build_receipt(row, subject, provider_names(session), controller, base_url)
    jws, kid = sign_receipt(content, keys, issuer, now)
    receipt = ConsentReceipt(
        grant_row_id=grant_row_id,
        receipt_id=content["consentReceiptID"],
        kid=kid,
        jws=jws,
        signed_at=now,
    )
    try:
        with session.begin_nested():  # a concurrent run signed it first: keep theirs
            session.add(receipt)
            session.flush()
    except IntegrityError:
        return stored_receipt(session, row)
    return receipt


def unsigned_versions(session: Session, created_before: datetime, limit: int) -> list[int]:
    """Grant versions (row ids, oldest first) with no signed receipt, made before
    `created_before`: their task was lost, or they predate signed receipts."""
    signed = select(ConsentReceipt.grant_row_id)
    return [
        i
        for i in session.exec(
            select(ConsentGrant.id)
            .where(col(ConsentGrant.id).not_in(signed))
            .where(col(ConsentGrant.created_at) < created_before)
            .order_by(col(ConsentGrant.id))
            .limit(limit)
        )
        if i is not None
    ]


def sweep(session: Session, now: datetime, older_than: timedelta, limit: int = 500) -> int:
    """Publish the signing of every receipt still missing (after `older_than`, so a task sent
    a moment ago is not sent twice); the task is idempotent."""
    ids = unsigned_versions(session, now - older_than, limit)
    for grant_row_id in ids:
        db.publish(session, SIGN_RECEIPT, str(grant_row_id))
    return len(ids)
