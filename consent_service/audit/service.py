"""Appending to and verifying the audit chain: h_i = HMAC(k, h_{i-1} || canonical(entry_i))."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from sqlmodel import Session, col, select

from consent_service.audit.models import AuditEvent, AuditHead
from consent_service.timeutil import as_utc, utcnow


def _canonical(event: AuditEvent) -> bytes:
    body = {
        "seq": event.seq,
        "event_type": event.event_type,
        "actor": event.actor,
        "subject_id": event.subject_id,
        "payload": event.payload,
        "created_at": as_utc(event.created_at).isoformat(),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _link(key: bytes, prev_hash: str, event: AuditEvent) -> str:
    return hmac.new(key, prev_hash.encode() + _canonical(event), hashlib.sha256).hexdigest()


def append(
    session: Session,
    key: bytes,
    event_type: str,
    actor: str,
    payload: dict | None = None,
    subject_id: int | None = None,
) -> AuditEvent:
    """Add one event to the chain inside the caller's transaction (which must commit it)."""
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is None:
        head = AuditHead(id=1)
        session.add(head)
    event = AuditEvent(
        seq=head.seq + 1,
        event_type=event_type,
        actor=actor,
        subject_id=subject_id,
        payload=payload or {},
        # Microseconds are kept by PostgreSQL and SQLite alike, so the canonical form round-trips.
        created_at=utcnow(),
        prev_hash=head.hash,
        hash="",
    )
    event.hash = _link(key, head.hash, event)
    head.seq, head.hash = event.seq, event.hash
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None


def verify(session: Session, key: bytes) -> ChainReport:
    """Walk the whole chain; report the first entry that does not follow from the one before."""
    prev_hash = "0" * 64
    expected_seq = 1
    count = 0
    for event in session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))):
        if event.seq != expected_seq:
            return ChainReport(False, count, expected_seq, "missing or reordered entry")
        if event.prev_hash != prev_hash or not hmac.compare_digest(
            event.hash, _link(key, prev_hash, event)
        ):
            return ChainReport(False, count, event.seq, "entry does not match its hash")
        prev_hash, expected_seq, count = event.hash, expected_seq + 1, count + 1
    head = session.get(AuditHead, 1)
    if head is None and count:  # every append writes the head: entries without one were cut
        return ChainReport(False, count, count + 1, "chain head is missing")
    if head is not None and (head.seq != count or head.hash != prev_hash):
        return ChainReport(False, count, count + 1, "chain was truncated")
    return ChainReport(True, count)
