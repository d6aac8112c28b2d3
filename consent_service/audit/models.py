"""Append-only audit log: a hash chain (HMAC, secret key) and an RFC 9162 Merkle tree over the
same entries, with signed checkpoints of the tree."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, Text
from sqlmodel import Field, SQLModel

from consent_service.timeutil import utcnow

EMPTY_ROOT_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # SHA-256("")


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"

    # Contiguous from 1: a gap is itself evidence of deletion.
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    event_type: str = Field(max_length=64, index=True)
    actor: str = Field(max_length=200)
    subject_id: int | None = Field(default=None, index=True)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    # SHA-256(0x00 || canonical entry), hex: the Merkle leaf, kept so proofs need no re-hashing
    # (verification recomputes it from the entry).
    leaf_hash: str = Field(default="", max_length=64)
    # The id of the audit MAC key `hash` is made with (keyring purpose `audit-mac`): a rotation
    # puts new entries under a new key and `verify` checks each entry with its own.
    mac_key_id: str = Field(default="v0", max_length=64)


class AuditHead(SQLModel, table=True):
    """One row, locked by each appender, so concurrent writers leave one linear chain."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default="0" * 64, max_length=64)
    # The Merkle tree of the first `seq` entries: its root (hex) and its frontier (hex hashes of
    # the perfect subtrees `seq`'s binary digits name, largest first), so appending is O(log n).
    root: str = Field(default=EMPTY_ROOT_HEX, max_length=64)
    frontier: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class AuditCheckpoint(SQLModel, table=True):
    """A signed tree head, as published. Also appended to a file outside the database, and
    named in decision tokens: a database writer who rewrites these rows is caught by the
    copies kept elsewhere."""

    __tablename__ = "audit_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    size: int = Field(index=True)
    root: str = Field(max_length=64)
    timestamp: int
    note: str = Field(sa_column=Column(Text, nullable=False))
    # The signer's verifier key (`name+id+base64`): public, for witnesses to pin.
    verifier_key: str = Field(max_length=300)
