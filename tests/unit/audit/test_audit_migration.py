"""Migration 0015 on a log written before it: every entry gets its leaf, the head its root and
frontier, and the log verifies as a tree (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session

from consent_service.audit import merkle
from consent_service.audit import service as audit
from consent_service.audit.models import AuditEvent
from consent_service.crypto import StaticKeys
from consent_service.migrate import upgrade

KEY = StaticKeys.single(b"k" * 32)
N = 13


def write_old_log(url: str) -> None:
    """Entries and head as the code before the Merkle tree wrote them (chain only)."""
    engine = create_engine(url)
    prev = "0" * 64
    with engine.begin() as conn:
        for seq in range(1, N + 1):
            event = AuditEvent(
                seq=seq,
                event_type="test.old",
                actor=f"subject:{seq}",
                subject_id=seq if seq % 2 else None,
                payload={"i": seq, "note": "旧 ✓"},
                created_at=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=seq),
                prev_hash=prev,
                hash="",
            )
            event.hash = audit._link(KEY.key("v0"), prev, event)
            conn.execute(
                text(
                    "INSERT INTO audit_event (seq, event_type, actor, subject_id, payload, "
                    "created_at, prev_hash, hash) VALUES (:seq, :event_type, :actor, "
                    ":subject_id, :payload, :created_at, :prev_hash, :hash)"
                ),
                {**event.model_dump(), "payload": json.dumps(event.payload)},
            )
            prev = event.hash
        conn.execute(
            text("INSERT INTO audit_head (id, seq, hash) VALUES (1, :n, :h)"), {"n": N, "h": prev}
        )
    engine.dispose()


def check(url: str) -> None:
    engine = create_engine(url)
    try:
        with Session(engine) as s:
            report = audit.verify_log(s, KEY, [])
            assert report.ok, report.problems
            assert report.size == N
            assert audit.tree_head(s) == audit.TreeHead(N, report.root)
            assert audit.leaf_hashes(s, N) == [
                audit.entry_leaf(s.get(AuditEvent, seq)) for seq in range(1, N + 1)
            ]
            audit.append(s, KEY, "test.new", "system", {})  # the tree goes on from the frontier
            s.commit()
            report = audit.verify_log(s, KEY, [])
            assert report.ok and report.size == N + 1
            assert report.root == merkle.root(audit.leaf_hashes(s, N + 1))
    finally:
        engine.dispose()


def test_existing_entries_get_their_leaves_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'consent.sqlite'}"
    upgrade(url, "0014_error_params")
    write_old_log(url)
    upgrade(url)
    check(url)


@pytest.mark.postgres
def test_existing_entries_get_their_leaves_on_postgresql(postgres_database):
    with postgres_database() as url:
        upgrade(url, "0014_error_params")
        write_old_log(url)
        upgrade(url)
        check(url)
