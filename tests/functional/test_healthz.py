"""`GET /healthz`, the web container's health check (docker-compose.yml): 200 when the database
answers, 503 when it does not, with nothing an outsider could use, and no account needed."""

from __future__ import annotations

import logging

from consent_service.app import create_web_app
from consent_service.settings import Settings


def test_healthy_when_the_database_answers(make_api_app):
    answer = make_api_app().client().get("/healthz")
    assert answer.status_code == 200
    assert answer.get_json() == {"status": "ok"}
    assert answer.headers["Cache-Control"] == "no-store"


def test_unavailable_when_the_database_does_not(tmp_path, caplog):
    # A SQLite file in a folder that does not exist: every connection fails.
    settings = Settings(
        consent_service_home=tmp_path,
        broker_url="memory://",
        database_url=f"sqlite:///{tmp_path / 'gone' / 'consent.sqlite'}",
    )
    app = create_web_app(settings)
    with caplog.at_level(logging.ERROR, logger="consent_service.operators.probes"):
        answer = app.test_client().get("/healthz")
    assert answer.status_code == 503
    assert answer.get_json() == {"status": "unavailable"}  # the cause only in the log
    assert "unable to open database file" in caplog.text
    app.extensions["db_engine"].dispose()
