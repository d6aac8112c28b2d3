"""schemathesis against the served OpenAPI document of a real app: with a provider's key, with
another provider's key and with none, no answer is a 5xx and every answer matches the document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api(make_api_app):
    # A generous limit: the fuzzer sends hundreds of requests with one key.
    return make_api_app(api_rate_limit="100000/minute")


def test_api_conforms_to_its_document(api):
    # Loaded from the app's own route, as a provider's tooling would read it. (The strategy API
    # rather than schemathesis.pytest.from_fixture, which breaks on pytest 9's node ids.)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api.app)
    operations = {op.ok().label for op in schema.get_all_operations()}
    assert {
        "POST /api/v1/jobs",
        "GET /api/v1/jobs/{job_id}",
        "PUT /api/v1/webhook",
        "GET /api/v1/webhook/deliveries",
        "POST /api/v1/decisions/verify",
        "GET /.well-known/jwks.json",
        "GET /api/v1/audit/checkpoint",
    } <= operations
    # Provider A's key, provider B's key (A's jobs must stay A's) and no key at all.
    credentials = [api.auth(api.key), api.auth(api.other_key), {}]
    cases = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )

    @given(case=cases)
    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case):
        for headers in credentials:
            case.call_and_validate(headers=headers, checks=CHECKS)

    check()


def test_successful_answers_match_the_document(api):
    """What random inputs rarely reach (a job that exists, a configured webhook), checked on
    purpose: every answer as the document describes it."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api.app)
    own = api.auth(api.key)

    def call(label: str, status: int, headers=own, **case):
        operation = schema.find_operation_by_label(label)
        response = operation.Case(**case).call_and_validate(headers=headers, checks=CHECKS)
        assert response.status_code == status, response.text
        return response.json()

    job = call(
        "POST /api/v1/jobs",
        202,
        body={"operation": "face_swap", "source": [b"an image"]},
        media_type="multipart/form-data",
    )
    assert call("GET /api/v1/jobs/{job_id}", 200, path_parameters={"job_id": job["id"]}) == job
    theirs = call(
        "GET /api/v1/jobs/{job_id}",
        404,
        headers=api.auth(api.other_key),
        path_parameters={"job_id": job["id"]},
    )
    assert job["id"] not in str(theirs)  # another provider learns nothing, not even the id
    call("PUT /api/v1/webhook", 200, body={"url": "http://127.0.0.1:9/hook"})
    call("GET /api/v1/webhook", 200)
