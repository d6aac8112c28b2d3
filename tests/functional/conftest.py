"""Functional tests: a real app (WSGI, migrated SQLite in a temporary home) driven through its
test client. No worker runs: submitted jobs stay queued, which is all an API contract needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

from consent_service import db
from consent_service.app import create_app
from consent_service.migrate import upgrade
from consent_service.providers.service import create_provider, issue_key
from consent_service.settings import Settings
from tests.support import postgres_database


@dataclass
class ApiApp:
    app: Flask
    key: str  # provider A's key
    other_key: str  # provider B's key
    settings: Settings

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}


@pytest.fixture(scope="module")
def make_api_app(tmp_path_factory) -> Iterator[Callable[..., ApiApp]]:
    """`make_api_app(**settings)`: a migrated app with two providers, each with a key."""
    apps: list[Flask] = []

    def make(**overrides) -> ApiApp:
        home = tmp_path_factory.mktemp("api-home")
        defaults = {"consent_service_home": home, "broker_url": "memory://"}
        settings = Settings(**{**defaults, **overrides})
        upgrade(settings.sqlalchemy_url)
        app = create_app(settings)
        apps.append(app)
        with app.app_context(), db.unit_of_work() as s:
            keys = [issue_key(s, create_provider(s, name)) for name in ("Acme", "Globex")]
        return ApiApp(app, *keys, settings)

    yield make
    for app in apps:
        app.extensions["db_engine"].dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def api(request, make_api_app) -> Iterator[ApiApp]:
    """An ApiApp with default settings on SQLite, then on PostgreSQL (a database of its own);
    a module that needs other settings defines its own `api`."""
    if request.param == "sqlite":
        yield make_api_app()
        return
    with postgres_database() as url:
        yield make_api_app(database_url=url)
