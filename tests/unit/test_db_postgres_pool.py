"""PostgreSQL connections the server cut (a restart, a failover, a killed backend): the pool
pings a connection that sat unused `db.PING_AFTER_IDLE` or more before handing it out, and
replaces it when the server does not answer; a connection used a moment ago is handed out
without that round trip (each API request paid it before). The server cuts them here with
`pg_terminate_backend`, on a database of the test's own."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, exc, text

from consent_service import db
from tests.support import libpq_conninfo, postgres_database


@pytest.fixture()
def pg() -> Iterator[tuple[Engine, str]]:
    with postgres_database() as url:
        engine = db.make_engine(url)
        try:
            yield engine, libpq_conninfo(url)
        finally:
            engine.dispose()


def _backend(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _cut(conninfo: str, pid: int) -> None:
    """Terminate the backend `pid` and wait until the server no longer lists it."""
    with psycopg.connect(conninfo, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            assert time.monotonic() < deadline, f"backend {pid} still there"
            time.sleep(0.02)


def _counting_pings(engine: Engine, monkeypatch) -> list[int]:
    pings: list[int] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_conn):
        pings.append(1)
        return ping(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pings


def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(pg, monkeypatch):
    engine, _ = pg
    pings = _counting_pings(engine, monkeypatch)
    first = _backend(engine)
    assert [_backend(engine) for _ in range(20)] == [first] * 20  # the same one, hot (LIFO)
    assert pings == []
    time.sleep(db.PING_AFTER_IDLE + 0.1)
    assert _backend(engine) == first
    assert pings == [1]  # idle long enough: pinged once, and it answered


def test_a_connection_cut_while_idle_is_replaced_before_anyone_uses_it(pg, monkeypatch):
    engine, conninfo = pg
    pings = _counting_pings(engine, monkeypatch)
    cut = _backend(engine)
    _cut(conninfo, cut)
    time.sleep(db.PING_AFTER_IDLE + 0.1)  # a restart takes longer than this
    assert _backend(engine) != cut  # no error: the ping failed and the pool opened a new one
    assert pings == [1]


def test_a_connection_cut_between_two_close_uses_fails_one_statement_then_the_pool_renews(
    pg, monkeypatch
):
    """What the idle ping leaves (as any pool does for a connection cut while in use): one
    statement fails with the connection invalidated; the pool then replaces the connections
    opened before the failure, so the next checkout works. The wait is long here so that the
    test does not depend on how fast the machine is."""
    engine, conninfo = pg
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 3600.0)
    cut = _backend(engine)
    _cut(conninfo, cut)
    with pytest.raises(exc.DBAPIError) as failed, engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert failed.value.connection_invalidated
    assert _backend(engine) != cut
