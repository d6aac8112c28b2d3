"""The audit log on PostgreSQL: concurrent appenders and checkpoint makers leave one linear log
that verifies against every checkpoint; the migrated schema refuses to rewrite audit rows."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, SQLModel, col, create_engine, select

from consent_service.audit import service as audit
from consent_service.audit.checkpoints import SignerKey, parse_note
from consent_service.audit.models import AuditCheckpoint, AuditEvent
from consent_service.crypto import StaticKeys
from consent_service.migrate import upgrade
from consent_service.timeutil import utcnow

KEY = StaticKeys.single(b"k" * 32)
SIGNER = SignerKey("pg.example/audit", Ed25519PrivateKey.generate())
WRITERS, EACH = 4, 25


@pytest.mark.postgres
def test_concurrent_appenders_and_checkpoints_leave_one_linear_log(postgres_database):
    with postgres_database() as url:
        engine = create_engine(url, pool_size=WRITERS + 2)
        try:
            SQLModel.metadata.create_all(engine)
            start = threading.Barrier(WRITERS + 1)
            errors: list[BaseException] = []

            def writer(number: int) -> None:
                try:
                    start.wait()
                    for i in range(EACH):
                        with Session(engine) as s:
                            audit.append(s, KEY, "test.concurrent", f"writer:{number}", {"i": i})
                            s.commit()
                except BaseException as exc:  # reported below
                    errors.append(exc)

            def checkpointer() -> None:
                try:
                    start.wait()
                    for i in range(15):
                        with Session(engine) as s:
                            audit.make_checkpoint(s, SIGNER, utcnow() + timedelta(seconds=i))
                            s.commit()
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
            threads.append(threading.Thread(target=checkpointer))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert errors == []
            with Session(engine) as s:
                audit.make_checkpoint(s, SIGNER, utcnow() + timedelta(minutes=1))
                s.commit()
                seqs = s.exec(select(AuditEvent.seq).order_by(col(AuditEvent.seq))).all()
                assert seqs == list(range(1, WRITERS * EACH + 1))
                rows = s.exec(select(AuditCheckpoint)).all()
                held = [parse_note(r.note, [SIGNER.verifier]) for r in rows]
                report = audit.verify_log(s, KEY, [SIGNER.verifier], held)
                assert report.ok, report.problems
                assert report.checkpoints == 2 * len(rows) >= 2
                assert max(c.size for c in held) == WRITERS * EACH
        finally:
            engine.dispose()


@pytest.mark.postgres
def test_the_migrated_audit_tables_refuse_update_delete_and_truncate(postgres_database):
    with postgres_database() as url:
        upgrade(url)
        engine = create_engine(url)
        try:
            with Session(engine) as s:
                audit.append(s, KEY, "test.event", "system", {"a": 1})
                audit.make_checkpoint(s, SIGNER, utcnow())
                audit.append(s, KEY, "test.event", "system", {"a": 2})  # the head may move
                s.commit()
            for statement in (
                "UPDATE audit_event SET actor = 'mallory' WHERE seq = 1",
                "DELETE FROM audit_event WHERE seq = 2",
                "TRUNCATE audit_event CASCADE",
                "UPDATE audit_checkpoint SET size = 0",
                "DELETE FROM audit_checkpoint",
                "TRUNCATE audit_checkpoint",
                "DELETE FROM audit_head",
                "TRUNCATE audit_head",
            ):
                with engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
                    conn.execute(text(statement))
            with Session(engine) as s:
                assert audit.verify_log(s, KEY, [SIGNER.verifier]).ok
                assert audit.tree_head(s).size == 2
        finally:
            engine.dispose()
