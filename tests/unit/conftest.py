"""Unit-test plumbing: an in-memory schema per test, throwaway PostgreSQL databases, no network.

Unit tests run no worker, load no face model and reach nothing beyond this machine.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from types import ModuleType

import pytest
from flask import Flask
from sqlalchemy import Engine, event
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel, create_engine

import consent_service.models  # noqa: F401 - registers every table on SQLModel.metadata
from consent_service import i18n
from consent_service.accounts.models import Subject
from consent_service.biometrics.service import FaceMatching, GalleryIndex
from consent_service.crypto import Envelope
from consent_service.storage import LocalMediaStore
from tests import factories as row_factories
from tests import support
from tests.fakes import FakeFaces


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse connections beyond this machine (the local PostgreSQL server stays reachable)."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                local = ipaddress.ip_address(host).is_loopback
            except ValueError:
                local = host == "localhost"
            if not local:
                raise ConnectionRefusedError(f"unit tests may not reach {host}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def engine() -> Iterator[Engine]:
    """A fresh in-memory database with every table; one connection, so sessions share it."""
    eng = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )

    @event.listens_for(eng, "connect")
    def _foreign_keys(dbapi_conn, _record):  # as in production (consent_service.db)
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    SQLModel.metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def factories(session: Session) -> Iterator[ModuleType]:
    """tests/factories.py with the test's session bound: `factories.GateJobFactory(decided=True)`
    adds (and flushes) the row in `session`."""
    with row_factories.bound(session):
        yield row_factories


@pytest.fixture
def reopen(engine: Engine) -> Iterator[Callable[[], Session]]:
    """New sessions on the same database, to read what was stored rather than cached objects."""
    opened: list[Session] = []

    def open_session() -> Session:
        s = Session(engine)
        opened.append(s)
        return s

    yield open_session
    for s in opened:
        s.close()


@pytest.fixture
def make_subject(session: Session) -> Callable[..., Subject]:
    """A subject with its account (the password hash is a stand-in: no sign-in here)."""

    def make(protect_only: bool = False, language: str | None = None) -> Subject:
        with row_factories.bound(session):
            user = row_factories.UserFactory(language=language)
            return row_factories.SubjectFactory(user=user, protect_only=protect_only)

    return make


@pytest.fixture
def babel_app(tmp_path) -> Iterator[Flask]:
    """A bare Flask app with the service's translations, its app context pushed: where mail is
    rendered (a request or a Celery task in the service)."""
    app = Flask(__name__)
    i18n.init_app(app, tmp_path)
    with app.app_context():
        yield app


@pytest.fixture
def envelope() -> Envelope:
    return Envelope(secrets.token_bytes(32))


@pytest.fixture
def postgres_database() -> Callable[[], AbstractContextManager[str]]:
    """`with postgres_database() as url:` a new, empty database on the local PostgreSQL server,
    dropped afterwards. It is opened inside the test, so an unreachable server fails the test
    (CI always has one); it never skips."""
    return support.postgres_database


@pytest.fixture
def worker_context(engine: Engine) -> Iterator[list[tuple[str, list[str]]]]:
    """An app context like a worker's, on the test database, for task bodies that run their
    steps as units of work (`db.unit_of_work()`): yields the tasks those units sent, in order."""
    sent: list[tuple[str, list[str]]] = []
    app = Flask(__name__)
    app.extensions["db_engine"] = engine
    app.extensions["task_sender"] = lambda name, args: sent.append((name, args))
    with app.app_context():
        yield sent


# The fakes the pipelines' fast tests share: a stand-in face finder, a media store, matching.


@pytest.fixture
def faces() -> FakeFaces:
    return FakeFaces()


@pytest.fixture
def store(tmp_path, envelope) -> LocalMediaStore:
    return LocalMediaStore(tmp_path / "media", envelope)


@pytest.fixture
def matching(faces, envelope) -> FaceMatching:
    return FaceMatching(
        embedder=faces,
        gallery=GalleryIndex(envelope, faces.model_name),
        tolerance=0.75,
        margin=0.06,
        max_pixels=10**7,
    )
