"""Engines, sessions and the unit of work: one session per request, task or CLI command.

Services take a `Session`, flush, and *register* what must happen only once their writes are
durable: tasks to publish (`publish`) and side effects such as deleting media or sending mail
(`after_commit`). They never commit. The boundary does, in one place (`finish`): it commits,
then publishes the registered tasks, then runs the registered side effects; a rollback drops
them. A task the broker will not take after the commit is left to the sweeps (every published
task has a row a sweep finds); a request then answers what `on_unsent` says (the API: 503).
The boundaries are the request (`init_app`: a response below 400 commits), the task and the
CLI command (`unit_of_work`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from flask import Flask, Response, current_app, g
from sqlalchemy import Engine, event, exc
from sqlmodel import Session, create_engine

log = logging.getLogger(__name__)
_PENDING = "after_commit"
# A pooled server connection left unused this long is pinged before it is handed out again. A
# database restart (a shutdown checkpoint, a start, recovery; `pg_ctlcluster restart`: 2.3 s here)
# takes longer than this, so a connection it cut has sat this long when it is next asked for.
PING_AFTER_IDLE = 0.5  # seconds
_IDLE_SINCE = "idle_since"


class TaskSender(Protocol):
    """Sends one task message by name (the Celery app's `send_task`, bound by `workers`)."""

    def __call__(self, name: str, args: list[str]) -> None: ...


@dataclass
class _Pending:
    tasks: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    effects: list[Callable[[], None]] = field(default_factory=list)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # web, worker and CLI share one file
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        event.listen(engine, "before_cursor_execute", _sqlite_write_lock_first)
        return engine
    # The most recently used connection first (LIFO), so under load the same few stay hot and
    # are never pinged; pinging every checkout (pre-ping) cost each API request a round trip.
    engine = create_engine(url, pool_use_lifo=True)
    event.listen(engine, "checkin", _mark_idle)
    event.listen(engine, "checkout", _ping_if_idle(engine))
    return engine


def _mark_idle(_dbapi_conn, record) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _ping_if_idle(engine: Engine):
    """A checkout listener: ping a connection that sat unused `PING_AFTER_IDLE` or more, and
    when the server does not answer, have the pool open a new one (`DisconnectionError`).

    A connection cut while in use, or between two uses closer together than that (the server
    killed its backend, a failover), fails the one statement that meets it; SQLAlchemy then
    renews every connection of the pool opened before the failure, so the next request gets a
    new one (`tests/unit/test_db_postgres_pool.py`)."""

    def checkout(dbapi_conn, record, _proxy) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
            return  # new, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as e:
            raise exc.DisconnectionError(f"the database connection went away: {e}") from e

    return checkout


def _sqlite_write_lock_first(conn, cursor, statement, _parameters, context, _executemany):
    """Begin with the write lock (`BEGIN IMMEDIATE`) a transaction that will read, then write.

    Python's sqlite3 begins a transaction only before a data-changing statement, and then a
    writer waits for the others (busy_timeout). A transaction begun otherwise reads first: by a
    SAVEPOINT (`savepoint`, `begin_nested`: always around writes here) or by a read "for
    update" (SQLite has no FOR UPDATE, so nothing would hold the row). When another process
    commits between its first read and its first write, SQLite refuses the write at once
    ("database is locked", SQLITE_BUSY_SNAPSHOT), whatever the busy timeout. Taking the lock
    before the first read makes the others wait their turn instead, as PostgreSQL's row locks do.
    """
    dbapi = conn.connection.dbapi_connection
    if dbapi is None or dbapi.in_transaction:
        return
    compiled = getattr(context, "compiled", None)
    for_update = getattr(getattr(compiled, "statement", None), "_for_update_arg", None)
    if for_update is not None or statement.lstrip().upper().startswith("SAVEPOINT"):
        cursor.execute("BEGIN IMMEDIATE")


UnsentAnswer = Callable[[Response], Response]
_UNSENT_ANSWER = "db_unsent_answer"


def init_app(app: Flask, engine: Engine) -> None:
    """Attach the engine; every request becomes one unit of work."""
    app.extensions["db_engine"] = engine
    app.after_request(_finish_request)
    app.teardown_appcontext(_close_session)


def on_unsent(app: Flask, answer: UnsentAnswer) -> None:
    """What a request answers instead when its unit of work committed but a task it registered
    could not be published (the broker is down): `answer(response)` (by default the response
    itself; the API answers 503, `errors_http`). Never a 500 after the commit."""
    app.extensions[_UNSENT_ANSWER] = answer


def engine() -> Engine:
    return current_app.extensions["db_engine"]


def session() -> Session:
    """The session of the current request (or app context); the boundary commits it."""
    if "db_session" not in g:
        g.db_session = Session(engine(), expire_on_commit=False)
    return g.db_session


# ---------------------------------------------------------------------------- registration
def _pending(s: Session) -> _Pending:
    return s.info.setdefault(_PENDING, _Pending())


def publish(s: Session, task_name: str, *args: str) -> None:
    """Send the task `task_name(*args)` once this session's transaction has committed (so the
    task never looks for a row that is not there); never if it rolls back."""
    _pending(s).tasks.append((task_name, args))


def after_commit(s: Session, effect: Callable[[], None]) -> None:
    """Run `effect` once this session's transaction has committed (delete files, send mail);
    never if it rolls back. A failing effect is logged; the commit stands."""
    _pending(s).effects.append(effect)


def registered_tasks(s: Session) -> list[tuple[str, tuple[str, ...]]]:
    """The tasks this unit of work will send when it commits, in order (for tests and logs)."""
    return list(_pending(s).tasks)


@contextmanager
def savepoint(s: Session) -> Iterator[None]:
    """A nested transaction: when the block raises, its writes *and* the work it registered are
    undone, and the error propagates; the rest of the unit of work goes on."""
    pending = _pending(s)
    tasks, effects = len(pending.tasks), len(pending.effects)
    try:
        with s.begin_nested():
            yield
    except BaseException:
        del pending.tasks[tasks:]
        del pending.effects[effects:]
        raise


# ---------------------------------------------------------------------------- the boundary
def finish(s: Session) -> list[tuple[str, tuple[str, ...]]]:
    """The boundary's commit: commit, publish the registered tasks, run the registered side
    effects. The only place the code commits. Never raises once the commit is done: a task the
    broker would not take (down, unreachable) is logged and returned, and its row, committed,
    is published later by a sweep (`sweep.stale_work` for jobs and enrollments,
    `webhooks.retry_due` for deliveries); the caller decides what to answer (a request under
    /api/ answers 503, see `on_unsent`)."""
    s.commit()
    pending: _Pending = s.info.pop(_PENDING, None) or _Pending()
    unsent: list[tuple[str, tuple[str, ...]]] = []
    if pending.tasks:
        send: TaskSender = current_app.extensions["task_sender"]
        for name, args in pending.tasks:
            if unsent:  # the broker just refused one: do not wait on it again for each task
                unsent.append((name, args))
                continue
            try:
                send(name, list(args))
            except Exception:  # the commit stands; the sweep publishes it
                log.warning("could not publish %s%r; the sweep will", name, args, exc_info=True)
                unsent.append((name, args))
    for effect in pending.effects:
        try:
            effect()
        except Exception:  # the commit stands; a sweep or a retry catches up
            log.exception("after-commit work failed: %r", effect)
    return unsent


def rollback(s: Session) -> None:
    s.rollback()
    s.info.pop(_PENDING, None)


@contextmanager
def unit_of_work(bind: Engine | None = None) -> Iterator[Session]:
    """One unit of work for a task step or a CLI command: a session finished (committed, then
    its registered work done) when the block ends cleanly, rolled back otherwise."""
    with Session(bind or engine(), expire_on_commit=False) as s:
        try:
            yield s
        except BaseException:
            rollback(s)
            raise
        finish(s)


def _finish_request(response: Response) -> Response:
    """A request is one unit of work: an answer below 400 commits it, any other rolls it back
    (an exception never reaches here, and teardown closes the session without committing)."""
    s: Session | None = g.get("db_session")
    if s is not None:
        if response.status_code < 400:
            if finish(s):  # committed, but a task could not be published
                answer: UnsentAnswer = current_app.extensions.get(_UNSENT_ANSWER, _same)
                return answer(response)
        else:
            rollback(s)
    return response


def _same(response: Response) -> Response:
    return response


def _close_session(_exc: BaseException | None) -> None:
    s = g.pop("db_session", None)
    if s is not None:
        s.close()
