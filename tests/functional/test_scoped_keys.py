"""Scoped API keys through the real app: every /api/v1 operation declares its scope once (the
check and the OpenAPI document read the same declaration), a key without the scope gets a 403
problem naming it, an expired key a 401 saying so, and rotation keeps the old key working for
its overlap only (CLI)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlmodel import select

from consent_service import db
from consent_service.api_contract.operations import ApiOperation
from consent_service.cli import main
from consent_service.cli_support import AppLoader
from consent_service.client import ScopeMissing, _error
from consent_service.providers import service as providers
from consent_service.providers.models import ApiKey, Provider
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Scope

PROBLEM = "application/problem+json"
# Served under /api/v1 without being an operation of the API: its own description.
DESCRIPTION_ROUTES = {"/api/v1/openapi.json", "/api/v1/docs"}


@pytest.fixture(scope="module")
def api(make_api_app):
    return make_api_app()


def _key(api, *scopes: Scope, expires_at=None) -> str:
    with api.app.app_context(), db.unit_of_work() as s:
        acme = s.exec(select(Provider).where(Provider.name == "Acme")).one()
        return providers.issue_key(s, acme, "test", scopes, expires_at)


def _operations(api) -> dict[tuple[str, str], dict]:
    doc = api.client().get("/api/v1/openapi.json").get_json()
    return {(m, p): op for p, methods in doc["paths"].items() for m, op in methods.items()}


def _call(api, method: str, path: str, key: str):
    url = path.replace("{", "").replace("}", "")  # any id: the scope is checked before it
    return api.client().open(url, method=method.upper(), headers=api.auth(key))


def test_every_api_operation_declares_its_scope_or_is_public(api):
    """Fails when a route under /api/v1 is undocumented, or needs a key without naming a
    scope: the declaration is what both the check and the document read."""
    missing = []
    for rule in api.app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or rule.rule in DESCRIPTION_ROUTES:
            continue
        spec = getattr(api.app.view_functions[rule.endpoint], "api_operation", None)
        if not isinstance(spec, ApiOperation) or (spec.authenticated and spec.scope is None):
            missing.append(rule.rule)
    assert missing == []


def test_the_document_names_each_operations_scope(api):
    operations = _operations(api)
    wanted = {
        ("post", "/api/v1/jobs"): "jobs:write",
        ("get", "/api/v1/jobs/{job_id}"): "jobs:read",
        ("get", "/api/v1/assurance-minimums"): "jobs:read",
        ("put", "/api/v1/assurance-minimums"): "jobs:write",
        ("post", "/api/v1/consent-requests"): "consent_requests",
        ("get", "/api/v1/consent-requests/{request_id}"): "consent_requests",
        ("put", "/api/v1/webhook"): "webhooks:admin",
        ("get", "/api/v1/webhook"): "webhooks:admin",
        ("get", "/api/v1/webhook/deliveries"): "webhooks:admin",
        ("get", "/api/v1/complaints/{complaint_id}"): "jobs:read",
        ("post", "/api/v1/complaints/{complaint_id}/answer"): "jobs:write",
        ("post", "/api/v1/jobs/{job_id}/label"): "labels",
    }
    for (method, path), scope in wanted.items():
        op = operations[(method, path)]
        assert op["security"] == [{"apiKey": [scope]}, {"apiKeyHeader": [scope]}], path
        assert "403" in op["responses"], path
    for (method, path), op in operations.items():
        if (method, path) not in wanted:  # the public ones: no key, so no scope and no 403
            assert op["security"] == [] and "403" not in op["responses"], path
    docs = api.client().get("/api/v1/docs").get_data(as_text=True)
    assert "Needs an API key allowed the scope jobs:write." in docs


def test_a_key_without_the_operations_scope_gets_a_403_naming_it(api):
    """Each scoped operation of every blueprint (jobs, assurance minimums, consent requests,
    webhooks) refuses a key that holds every scope but its own, and lets its own through."""
    for (method, path), op in _operations(api).items():
        if not op["security"]:
            continue
        [scope] = op["security"][0]["apiKey"]
        others = _key(api, *(s for s in Scope if s.value != scope))
        refused = _call(api, method, path, others)
        assert refused.status_code == 403, (method, path)
        assert refused.mimetype == PROBLEM
        body = refused.get_json()
        assert body["code"] == "ScopeMissing" and body["required_scope"] == scope
        assert body["title"] == "Scope missing"
        assert scope in body["detail"] and scope not in body["key_scopes"]
        assert f'scope="{scope}"' in refused.headers["WWW-Authenticate"]
        allowed = _call(api, method, path, _key(api, Scope(scope)))
        assert allowed.status_code not in (401, 403), (method, path, allowed.get_json())


def test_a_key_with_its_scope_does_the_work(api):
    reader = _key(api, Scope.JOBS_READ)
    answer = api.client().get("/api/v1/assurance-minimums", headers=api.auth(reader))
    assert answer.status_code == 200 and answer.get_json() == {"minimums": {}}
    put = api.client().put(
        "/api/v1/assurance-minimums",
        json={"minimums": {"face_swap": "live"}},
        headers=api.auth(reader),
    )
    assert put.status_code == 403
    writer = _key(api, Scope.JOBS_WRITE)
    put = api.client().put(
        "/api/v1/assurance-minimums",
        json={"minimums": {"face_swap": "live"}},
        headers=api.auth(writer),
    )
    assert put.status_code == 200
    hook = api.client().put(
        "/api/v1/webhook",
        json={"url": "http://127.0.0.1:9/hook", "events": ["job.decided"]},
        headers=api.auth(_key(api, Scope.WEBHOOKS_ADMIN)),
    )
    assert hook.status_code == 200 and hook.get_json()["secret"]


def test_an_expired_key_gets_a_401_saying_it_expired(api):
    raw = _key(api, *Scope, expires_at=utcnow() + timedelta(hours=1))
    with api.app.app_context(), db.unit_of_work() as s:
        row = s.exec(select(ApiKey).where(ApiKey.prefix == providers.key_prefix(raw))).one()
        row.expires_at = utcnow() - timedelta(minutes=1)
        s.add(row)
    answer = api.client().get("/api/v1/jobs/x", headers=api.auth(raw))
    assert answer.status_code == 401 and answer.mimetype == PROBLEM
    assert answer.get_json()["code"] == "ApiKeyExpired"
    assert answer.get_json()["title"] == "API key expired"
    assert "expired at" in answer.get_json()["detail"]
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    unknown = api.client().get("/api/v1/jobs/x", headers=api.auth("cs_00000000_" + "x" * 43))
    assert unknown.status_code == 401 and unknown.get_json()["code"] == "Unauthorized"
    assert unknown.headers["WWW-Authenticate"] == 'Bearer realm="consent-service"'
    assert "RateLimit-Limit" not in unknown.headers  # answered before any key is counted


def test_the_cli_issues_rotates_and_revokes_keys(api):
    def run(*args: str):
        result = CliRunner().invoke(main, list(args), obj=AppLoader(lambda: api.app))
        assert result.exit_code == 0, result.output
        return result.output.strip().splitlines()

    issued = run(
        "providers",
        "issue-key",
        "Acme",
        "--key-name",
        "farm",
        "--scope",
        "jobs:read",
        "--expires-in-days",
        "30",
    )[-1]
    assert api.client().get("/api/v1/jobs/x", headers=api.auth(issued)).status_code == 404
    assert api.client().get("/api/v1/webhook", headers=api.auth(issued)).status_code == 403
    prefix = providers.key_prefix(issued)
    listing = "\n".join(run("providers", "keys", "Acme"))
    assert f"cs_{prefix}_…  farm  scopes=jobs:read" in listing

    successor = run("providers", "rotate-key", "Acme", prefix, "--overlap-hours", "0")[-1]
    assert api.client().get("/api/v1/jobs/x", headers=api.auth(issued)).status_code == 401
    assert api.client().get("/api/v1/jobs/x", headers=api.auth(successor)).status_code == 404
    assert api.client().get("/api/v1/webhook", headers=api.auth(successor)).status_code == 403

    overlapping = run("providers", "rotate-key", "Acme", providers.key_prefix(successor))
    assert api.client().get("/api/v1/jobs/x", headers=api.auth(successor)).status_code == 404
    run("providers", "revoke-key", "Acme", providers.key_prefix(overlapping[-1]))
    assert api.client().get("/api/v1/jobs/x", headers=api.auth(overlapping[-1])).status_code == 401
    assert "works until" in overlapping[0]  # the default overlap (24 h) is said


def test_the_client_raises_a_scope_error_naming_the_scope(api):
    refused = api.client().get("/api/v1/webhook", headers=api.auth(_key(api, Scope.JOBS_READ)))
    error = _error(refused.status_code, refused.get_json())
    assert isinstance(error, ScopeMissing)
    assert error.required_scope == "webhooks:admin" and error.key_scopes == ["jobs:read"]
    assert "webhooks:admin" in str(error)
