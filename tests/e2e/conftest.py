"""A real stack per database backend: the Flask app (driven through its test client), a real
Celery worker process with the real face model, Redis as the broker, SQLite or PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from urllib3 import encode_multipart_formdata

from consent_service import db
from consent_service.app import create_app, create_web_app
from consent_service.biometrics.operator_import import import_face
from consent_service.biometrics.service import wait_for_enrollment
from consent_service.consent import service as consent
from consent_service.migrate import upgrade
from consent_service.processes import worker_command
from consent_service.providers.service import create_provider, issue_key
from consent_service.runtime import services
from consent_service.settings import Settings
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Operation, Role
from tests.support import postgres_database, redis_database, serve

DECISION_TIMEOUT = 180
# Tests only (production refuses it): every live session's script is drawn from this seed, so
# the browser tests' fake camera can play the moves and the code the page will ask for.
LIVE_SCRIPT_SEED = 20261202


@dataclass
class Stack:
    backend: str
    settings: Settings
    app: Flask
    worker: subprocess.Popen
    worker_log: Path

    def client(self) -> FlaskClient:
        return self.app.test_client()

    def enroll(self, email: str, *photos: Path):
        """Enroll a person through the worker and return the finished enrollment."""
        with self.app.app_context():
            with db.unit_of_work() as s:
                enrollment, _ = import_face(
                    s, services().media_store, email, [p.read_bytes() for p in photos], 5
                )
            # import_face registered the enrollment's task: sent when the unit of work ended.
            return wait_for_enrollment(db.engine(), enrollment.id, DECISION_TIMEOUT)

    def grant(self, subject_id: int, *operations: Operation, provider_ids=None):
        with self.app.app_context(), db.unit_of_work() as s:
            return consent.grant(
                s,
                services().audit_key,
                subject_id,
                consent.GrantRequest(
                    operations=list(operations),
                    roles=[Role.SOURCE, Role.TARGET],
                    all_providers=provider_ids is None,
                    provider_ids=provider_ids or [],
                ),
                consent.Evidence(actor="test", identity_method="test"),
            )

    def revoke(self, subject_id: int, grant_id: str):
        with self.app.app_context(), db.unit_of_work() as s:
            return consent.revoke(
                s,
                services().audit_key,
                subject_id,
                grant_id,
                consent.Evidence(actor="test", identity_method="test"),
            )

    def stored_media(self) -> list[str]:
        """Keys of every upload still in the stack's media store, whichever MEDIA_STORE it is
        (the database store on PostgreSQL, the local folder on SQLite)."""
        with self.app.app_context():
            return services().media_store.stale(utcnow() + timedelta(days=1))

    def provider(self, name: str) -> tuple[str, str]:
        """(provider id, API key) of a new provider."""
        with self.app.app_context(), db.unit_of_work() as s:
            provider = create_provider(s, name)
            return provider.id, issue_key(s, provider)


class Api:
    """A provider's pipeline, talking to the app through the test client."""

    def __init__(self, client: FlaskClient, key: str):
        self.client, self.headers = client, {"Authorization": f"Bearer {key}"}

    def submit(self, operation="face_swap", *, source=(), target=(), headers=None, raw=None):
        fields: list = [("operation", operation)]
        fields += [("source", (Path(p).name, Path(p).read_bytes())) for p in source]
        fields += [("target", (Path(p).name, Path(p).read_bytes())) for p in target]
        fields += list((raw or {}).items())
        # Encoded here: the test client's own multipart encoder leaks a temporary file per call.
        body, content_type = encode_multipart_formdata(fields)
        return self.client.post(
            "/api/v1/jobs",
            data=body,
            content_type=content_type,
            headers={**self.headers, **(headers or {})},
        )

    def job(self, job_id: str):
        return self.client.get(f"/api/v1/jobs/{job_id}", headers=self.headers)

    def wait(self, job_id: str) -> dict:
        deadline = time.monotonic() + DECISION_TIMEOUT
        while time.monotonic() < deadline:
            body = self.job(job_id).get_json()
            if body["status"] in ("decided", "failed"):
                return body
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} not decided within {DECISION_TIMEOUT} s")

    def gate(self, operation="face_swap", **media) -> dict:
        response = self.submit(operation, **media)
        assert response.status_code == 202, response.get_json()
        return self.wait(response.get_json()["id"])


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen(
            worker_command(1, ("--loglevel", "INFO")), env=env, stdout=fh, stderr=subprocess.STDOUT
        )


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    backend = request.param
    home = tmp_path_factory.mktemp(f"home-{backend}")
    with ExitStack() as cleanup:
        if backend == "postgres":
            database_url = cleanup.enter_context(postgres_database())
        else:
            database_url = f"sqlite:///{home / 'consent.sqlite'}"
        broker_url = cleanup.enter_context(redis_database())
        settings = Settings(
            consent_service_home=home,
            database_url=database_url,
            broker_url=broker_url,
            # Api.wait polls every 0.2 s with one key; rate limits have tests of their own.
            api_rate_limit="1000000/minute",
            live_script_seed=LIVE_SCRIPT_SEED,
        )
        upgrade(settings.sqlalchemy_url)
        app = create_app(settings)  # writes the generated secrets the worker will read
        env = {
            **os.environ,
            "CONSENT_SERVICE_HOME": str(home),
            "DATABASE_URL": database_url,
            "BROKER_URL": broker_url,
            "LIVE_SCRIPT_SEED": str(LIVE_SCRIPT_SEED),
            "PYTHONPATH": os.pathsep.join(sys.path),
        }
        log = home / "worker.log"
        worker = _start_worker(env, log)

        def stop() -> None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            app.extensions["db_engine"].dispose()

        cleanup.callback(stop)
        yield Stack(backend, settings, app, worker, log)
        if worker.poll() is not None:
            pytest.fail(f"the worker died during the tests:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def base_url(stack) -> Iterator[str]:
    """The stack's web over real HTTP, for the browser tests (tests/browser.py): the web
    process's app as granian runs it (`create_web_app`: public keys only), beside the worker."""

    web = create_web_app(stack.settings)
    try:
        with serve(web) as url:
            yield url
    finally:
        web.extensions["db_engine"].dispose()
