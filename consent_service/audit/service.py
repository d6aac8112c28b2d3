"""Appending to and verifying the audit log.

Each entry is in two structures at once:
- the hash chain, h_i = HMAC(k, h_{i-1} || canonical(entry_i)), k the audit MAC key: it catches
  an edit or a gap by anyone without k, also in entries no checkpoint covers yet;
- the RFC 9162 Merkle tree, leaf_i = SHA-256(0x00 || canonical(entry_i)), whose heads are signed
  as checkpoints by a key of their own and kept outside the database (a file, every decision
  token, every witness): given any earlier checkpoint, truncation, emptying, reordering,
  insertion and any rewrite are caught, also by someone holding k, who can redo the chain but
  not the signed heads held elsewhere."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from consent_service import db
from consent_service.audit import merkle
from consent_service.audit.checkpoints import (
    Checkpoint,
    CheckpointError,
    SignerKey,
    VerifierKey,
    append_to_file,
    parse_note,
)
from consent_service.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from consent_service.crypto import KeySource, UnknownKey
from consent_service.timeutil import as_utc, utcnow


def canonical_entry(
    seq: int,
    event_type: str,
    actor: str,
    subject_id: int | None,
    payload: dict,
    created_at: datetime,
) -> bytes:
    """The bytes an entry stands for, in the chain and in the tree (sorted-key, compact JSON)."""
    body = {
        "seq": seq,
        "event_type": event_type,
        "actor": actor,
        "subject_id": subject_id,
        "payload": payload,
        "created_at": as_utc(created_at).isoformat(),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _canonical(event: AuditEvent) -> bytes:
    return canonical_entry(
        event.seq,
        event.event_type,
        event.actor,
        event.subject_id,
        event.payload,
        event.created_at,
    )


def entry_leaf(event: AuditEvent) -> bytes:
    """The entry's Merkle leaf hash, computed from what the entry says."""
    return merkle.leaf_hash(_canonical(event))


def _link(key: bytes, prev_hash: str, event: AuditEvent) -> str:
    return hmac.new(key, prev_hash.encode() + _canonical(event), hashlib.sha256).hexdigest()


def _locked_head(session: Session) -> AuditHead:
    """The head row, locked until the transaction ends: appenders and checkpoint makers take
    turns. The first appenders of an empty log race to create it; the losers take the winner's."""
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is not None:
        return head
    try:
        with session.begin_nested():
            session.add(AuditHead(id=1))
    except IntegrityError:
        pass  # created by a concurrent transaction, now committed
    return session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()


def append(
    session: Session,
    key: KeySource,
    event_type: str,
    actor: str,
    payload: dict | None = None,
    subject_id: int | None = None,
) -> AuditEvent:
    """Add one event to the chain inside the caller's transaction (which must commit it)."""
    head = _locked_head(session)
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
        mac_key_id=key.primary_id,
    )
    event.hash = _link(key.key(event.mac_key_id), head.hash, event)
    leaf = entry_leaf(event)
    event.leaf_hash = leaf.hex()
    nodes = merkle.frontier_append([bytes.fromhex(h) for h in head.frontier], head.seq, leaf)
    head.seq, head.hash = event.seq, event.hash
    head.frontier = [n.hex() for n in nodes]  # a new list: the JSON column sees the change
    head.root = merkle.frontier_root(nodes).hex()
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None


def verify(session: Session, key: KeySource) -> ChainReport:
    """Walk the whole chain; report the first entry that does not follow from the one before.
    Each entry is checked with the MAC key its `mac_key_id` names (any version still held)."""
    prev_hash = "0" * 64
    expected_seq = 1
    count = 0
    for event in session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))):
        if event.seq != expected_seq:
            return ChainReport(False, count, expected_seq, "missing or reordered entry")
        try:
            mac = key.key(event.mac_key_id)
        except UnknownKey:
            return ChainReport(
                False, count, event.seq, f"entry names an unknown MAC key {event.mac_key_id!r}"
            )
        if event.prev_hash != prev_hash or not hmac.compare_digest(
            event.hash, _link(mac, prev_hash, event)
        ):
            return ChainReport(False, count, event.seq, "entry does not match its hash")
        prev_hash, expected_seq, count = event.hash, expected_seq + 1, count + 1
    head = session.get(AuditHead, 1)
    if head is None and count:  # every append writes the head: entries without one were cut
        return ChainReport(False, count, count + 1, "chain head is missing")
    if head is not None and (head.seq != count or head.hash != prev_hash):
        return ChainReport(False, count, count + 1, "chain was truncated")
    return ChainReport(True, count)


# ---------------------------------------------------------------------------- tree heads
@dataclass(frozen=True)
class TreeHead:
    size: int
    root: bytes


def tree_head(session: Session) -> TreeHead:
    """The tree head as this session sees it (after its own appends, if any)."""
    head = session.get(AuditHead, 1)
    if head is None:
        return TreeHead(0, merkle.EMPTY_ROOT)
    return TreeHead(head.seq, bytes.fromhex(head.root))


def checkpoint_claim(session: Session) -> dict[str, int | str]:
    """What a decision token carries as `audit_checkpoint`: the size and root (base64) of the
    tree the decision is recorded under. The head row is locked here until the deciding
    transaction ends, so the decision's own audit entry is the next one after this tree, and the
    token's signature makes each provider a witness of the log up to it."""
    head = _locked_head(session)
    return Checkpoint("", head.seq, bytes.fromhex(head.root), 0).claim()


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    """The newest signed checkpoint (what `GET /api/v1/audit/checkpoint` serves)."""
    return session.exec(
        select(AuditCheckpoint).order_by(col(AuditCheckpoint.id).desc()).limit(1)
    ).first()


def make_checkpoint(
    session: Session,
    signer: SignerKey,
    now: datetime,
    file: Path | None = None,
    force: bool = False,
) -> AuditCheckpoint | None:
    """Sign the current tree head and keep it (a row; and, once committed, a line in `file`).
    None when the log has not grown since the last checkpoint, unless `force`."""
    head = _locked_head(session)
    size, root = head.seq, head.root
    last = latest_checkpoint(session)
    if last is not None and last.size == size and not force:
        return None
    # Never earlier than the last one, so checkpoints are ordered by time as by size.
    stamp = max(int(now.timestamp()), last.timestamp if last is not None else 0)
    checkpoint = Checkpoint(signer.name, size, bytes.fromhex(root), stamp)
    note = checkpoint.sign(signer)
    row = AuditCheckpoint(
        size=size,
        root=root,
        timestamp=stamp,
        note=note,
        verifier_key=signer.verifier.vkey(),
    )
    session.add(row)
    session.flush()
    if file is not None:
        db.after_commit(session, lambda: append_to_file(file, note))
    return row


# ---------------------------------------------------------------------------- proofs
def leaf_hashes(session: Session, size: int) -> list[bytes]:
    """The stored leaf hashes of the first `size` entries (for proofs; verification recomputes)."""
    rows = session.exec(
        select(AuditEvent.leaf_hash).order_by(col(AuditEvent.seq)).limit(size)
    ).all()
    return [bytes.fromhex(h) for h in rows]


def consistency_proof(session: Session, first: int, second: int) -> list[bytes]:
    """The RFC 9162 proof that the tree of `first` entries is a prefix of the tree of `second`."""
    leaves = leaf_hashes(session, second)
    if len(leaves) != second:
        raise merkle.ProofError(f"the log has fewer than {second} entries")
    return merkle.consistency_proof(leaves, first)


def inclusion_proof(session: Session, seq: int, size: int) -> list[bytes]:
    """The RFC 9162 proof that entry `seq` (leaf seq - 1) is in the tree of `size` entries."""
    leaves = leaf_hashes(session, size)
    if len(leaves) != size:
        raise merkle.ProofError(f"the log has fewer than {size} entries")
    return merkle.inclusion_proof(leaves, seq - 1)


# ---------------------------------------------------------------------------- verification
@dataclass(frozen=True)
class LogReport:
    """What `verify_log` found: ok only when `problems` is empty."""

    size: int
    root: bytes
    chain: ChainReport
    checkpoints: int  # signed checkpoints the log was checked against
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def database_checkpoints(
    session: Session, keys: Sequence[VerifierKey]
) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints kept in the database whose signature verifies, and what is wrong with
    the others."""
    good, problems = [], []
    for row in session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.id))):
        try:
            checkpoint = parse_note(row.note, list(keys))
        except CheckpointError as exc:
            problems.append(f"checkpoint row {row.id}: {exc}")
            continue
        if (checkpoint.size, checkpoint.root.hex(), checkpoint.timestamp) != (
            row.size,
            row.root,
            row.timestamp,
        ):
            problems.append(f"checkpoint row {row.id}: its columns differ from its signed note")
            continue
        good.append(checkpoint)
    return good, problems


def verify_log(
    session: Session,
    key: KeySource,
    keys: Sequence[VerifierKey],
    held: Iterable[Checkpoint] = (),
    heads: Iterable[Checkpoint] = (),
) -> LogReport:
    """Check the whole log: the MAC chain, every entry's leaf, the head, the checkpoints kept in
    the database (their signatures by `keys`) and every checkpoint `held` outside it (the
    checkpoint file, a witness's, a token's): each must be a prefix of the log as it is now.
    `held` must already have had its signatures checked (`parse_note`). `heads` are tree heads
    signed otherwise (a decision token's `audit_checkpoint`, its token verified): each must be
    a prefix too, but they are not checkpoints the database must also hold."""
    chain = verify(session, key)
    problems: list[str] = []
    if not chain.ok:
        problems.append(
            f"hash chain broken at seq {chain.first_bad_seq}: {chain.problem} "
            f"({chain.checked} entries verified before it)"
        )
    leaves: list[bytes] = []
    for event in session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))):
        leaf = entry_leaf(event)
        if event.leaf_hash != leaf.hex():
            problems.append(f"entry {event.seq}: its stored leaf hash is not the entry's")
        leaves.append(leaf)
    size, top = len(leaves), merkle.root(leaves)
    head = tree_head(session)
    if head != TreeHead(size, top):
        problems.append(
            f"the head says {head.size} entries with root {head.root.hex()[:16]}…, the entries "
            f"make {size} with root {top.hex()[:16]}…"
        )
    stored, bad = database_checkpoints(session, keys)
    problems += bad
    outside = list(held)
    every = [
        *((c, "in the database") for c in stored),
        *((c, "kept outside it") for c in outside),
        *((c, "named in a decision token") for c in heads),
    ]
    roots = merkle.prefix_roots(leaves, {c.size for c, _ in every})
    for checkpoint, where in every:
        label = f"checkpoint of {checkpoint.time.isoformat()} ({checkpoint.size} entries, {where})"
        if checkpoint.size > size:
            problems.append(f"{label}: the log has only {size} entries now; entries were removed")
        elif roots[checkpoint.size] != checkpoint.root:
            problems.append(
                f"{label}: the first {checkpoint.size} entries are not the ones it signed "
                "(rewritten, reordered, inserted or removed)"
            )
    if outside:
        newest = max(outside, key=lambda c: (c.timestamp, c.size))
        if not stored or max(c.timestamp for c in stored) < newest.timestamp:
            problems.append(
                "the database's checkpoints end before one kept outside it "
                f"({newest.time.isoformat()}): newer checkpoint rows were removed or an old "
                "one replayed"
            )
    return LogReport(size, top, chain, len(every), tuple(dict.fromkeys(problems)))
