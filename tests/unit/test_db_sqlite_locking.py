"""SQLite (the embedded set-up: web, worker and CLI share one file) under concurrent writers.

A deferred transaction that read first and writes later cannot wait for a writer that
committed in between: SQLite answers "database is locked" at once (SQLITE_BUSY_SNAPSHOT), busy
timeout or not. A unit of work that reads before it writes inside a savepoint (idempotent
creation, sign-up) or reads a row "for update" (the audit head) hit exactly that in CI: a
consent request answered 500 while the worker wrote. `db.make_engine` takes the write lock at
the start of such transactions, so the second writer waits its turn instead."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text
from sqlmodel import Session

from consent_service import db


@pytest.fixture()
def engine(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'shared.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE row (id INTEGER PRIMARY KEY, who TEXT)"))
        conn.execute(text("CREATE TABLE head (id INTEGER PRIMARY KEY, seq INTEGER)"))
        conn.execute(text("INSERT INTO head VALUES (1, 0)"))
    yield engine
    engine.dispose()


def _other_writer(engine, started: threading.Event, done: list) -> threading.Thread:
    """Another process's unit of work: one insert, committed as soon as it may."""

    def run():
        with Session(engine) as other:
            started.set()
            other.execute(text("INSERT INTO row (who) VALUES ('other')"))
            other.commit()
            done.append(time.monotonic())

    return threading.Thread(target=run)


def test_a_savepoint_that_reads_then_writes_is_not_refused_by_a_writer_in_between(engine):
    started, done = threading.Event(), []
    with Session(engine) as s:
        with db.savepoint(s):
            s.execute(text("SELECT count(*) FROM row")).one()  # read first...
            other = _other_writer(engine, started, done)
            other.start()
            started.wait(5)
            time.sleep(0.3)  # ...another writer commits (or waits for us)...
            s.execute(text("INSERT INTO row (who) VALUES ('us')"))  # ...then write
        s.commit()
    other.join(10)
    assert done, "the other writer gave up"
    with Session(engine) as s:
        rows = sorted(r[0] for r in s.execute(text("SELECT who FROM row")))
    assert rows == ["other", "us"]


def test_a_read_for_update_holds_the_row_until_commit(engine):
    """Two appenders each read the head "for update", then advance it: on SQLite too, the
    second reads what the first wrote (no lost update)."""
    from sqlalchemy import Column, Integer, MetaData, Table, select

    head = Table(
        "head", MetaData(), Column("id", Integer, primary_key=True), Column("seq", Integer)
    )
    barrier = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def advance():
        try:
            with Session(engine) as s:
                barrier.wait()
                seq = s.execute(
                    select(head.c.seq).where(head.c.id == 1).with_for_update()
                ).scalar_one()
                time.sleep(0.2)
                s.execute(head.update().where(head.c.id == 1).values(seq=seq + 1))
                s.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=advance) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors, errors
    with Session(engine) as s:
        assert s.execute(text("SELECT seq FROM head")).scalar_one() == 2
