"""The API contract a provider relies on: problem+json for every error (titled in words, coded
for programs), bodies of the declared media type, rate limits per key stated on every answer,
Idempotency-Key replays, pagination on every list, and the OpenAPI document and docs page that
describe it all."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from kombu.exceptions import OperationalError
from sqlmodel import select
from urllib3 import encode_multipart_formdata
from werkzeug.serving import make_server

from consent_service import db
from consent_service.app import create_app
from consent_service.client import ConsentClient
from consent_service.gate.models import GateJob
from consent_service.gate.sweep import find_stale
from consent_service.providers.models import Provider
from consent_service.timeutil import new_id, utcnow
from consent_service.webhooks.models import Webhook, WebhookDelivery
from tests.support import redis_database

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def api(make_api_app):
    return make_api_app(max_upload_bytes=50_000)


def submit(client, headers, operation="face_swap", files=(("source", "me.jpg"),), extra=()):
    fields: list = [("operation", operation)]
    fields += [(field, (name, b"not decoded until the worker runs")) for field, name in files]
    fields += list(extra)
    body, content_type = encode_multipart_formdata(fields)
    return client.post("/api/v1/jobs", data=body, content_type=content_type, headers=headers)


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status and body["type"] == "about:blank"
    # The title is words ("Invalid request"), the code the name programs compare.
    assert re.fullmatch(r"(?:[A-Z][a-z'-]*|[A-Z]{2,})(?: (?:[a-z'-]+|[A-Z]{2,}))*", body["title"])
    assert body["code"].isidentifier()
    return body


def test_missing_key_is_a_401_problem(api):
    response = api.client().get("/api/v1/jobs/whatever")
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_job_and_unknown_path_are_404_problems(api):
    assert_problem(api.client().get("/api/v1/jobs/nope", headers=api.auth()), 404)
    assert_problem(api.client().get("/api/v1/no-such-thing", headers=api.auth()), 404)


def test_wrong_method_is_a_405_problem_naming_the_allowed_ones(api):
    response = api.client().delete("/api/v1/jobs", headers=api.auth())
    assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


def test_oversized_upload_is_a_413_problem(api):
    body, content_type = encode_multipart_formdata(
        [("operation", "face_swap"), ("source", ("big.jpg", b"x" * 60_000))]
    )
    response = api.client().post(
        "/api/v1/jobs", data=body, content_type=content_type, headers=api.auth()
    )
    assert_problem(response, 413)


def test_invalid_input_is_a_422_problem_listing_each_error(api):
    body = assert_problem(submit(api.client(), api.auth(), operation="face_melt"), 422)
    assert [e["loc"] for e in body["errors"]] == [["operation"]]
    assert "face_swap" in body["detail"]
    body = assert_problem(
        submit(api.client(), api.auth(), files=(("source", "a.jpg"), ("sauce", "b.jpg"))), 422
    )
    assert [e["loc"] for e in body["errors"]] == [["sauce"]]
    body = assert_problem(submit(api.client(), api.auth(), files=()), 422)
    assert "at least one" in body["detail"]
    bad_key = {**api.auth(), "Idempotency-Key": "x" * 201}
    assert "Idempotency-Key" in assert_problem(submit(api.client(), bad_key), 422)["detail"]


def test_idempotency_key_replays_the_first_job(api):
    client = api.client()
    first = submit(client, {**api.auth(), "Idempotency-Key": "order-17"})
    again = submit(client, {**api.auth(), "Idempotency-Key": "order-17"})
    other = submit(client, {**api.auth(), "Idempotency-Key": "order-18"})
    theirs = submit(client, {**api.auth(api.other_key), "Idempotency-Key": "order-17"})
    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 202)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert other.get_json()["id"] != first.get_json()["id"]
    # A key reused for a different request is refused rather than answered with the wrong job.
    reused = submit(
        client, {**api.auth(), "Idempotency-Key": "order-17"}, operation="face_generation"
    )
    assert "different request" in assert_problem(reused, 422)["detail"]
    # Keys belong to one provider: another provider's identical key is a new job of its own.
    assert theirs.status_code == 202 and theirs.get_json()["id"] != first.get_json()["id"]


def test_broker_down_at_submission_answers_503_and_keeps_the_job(make_api_app):
    """The job is committed before its task is sent: if the broker refuses the task, the
    answer is a 503 problem (never a 500 after the commit) and the job stays queued, for the
    stale-work sweep to publish."""
    api = make_api_app()
    sender = api.app.extensions["task_sender"]

    def broker_down(name, args):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    api.app.extensions["task_sender"] = broker_down
    try:
        response = submit(api.client(), api.auth())
    finally:
        api.app.extensions["task_sender"] = sender
    body = assert_problem(response, 503)
    assert "do not send it again" in body["detail"]
    location = response.headers["Location"]
    assert location in body["detail"]
    kept = api.client().get(location, headers=api.auth())
    assert kept.status_code == 200 and kept.get_json()["status"] == "queued"
    with api.app.app_context(), db.unit_of_work() as s:
        job = s.get(GateJob, kept.get_json()["id"])
        stale = find_stale(
            s, job.published_at + timedelta(minutes=2), timedelta(minutes=1), timedelta(hours=1)
        )
    assert job.id in stale.job_ids  # the sweep sends it once the broker is back


def test_rate_limit_answers_429_with_retry_after_per_key(make_api_app):
    api = make_api_app(api_rate_limit="3/day")  # a window no test run straddles
    client = api.client()
    answers = [client.get("/api/v1/jobs/nope", headers=api.auth()).status_code for _ in range(3)]
    assert answers == [404, 404, 404]
    limited = client.get("/api/v1/jobs/nope", headers=api.auth())
    assert_problem(limited, 429)
    assert 1 <= int(limited.headers["Retry-After"]) <= 86400
    # POSTs count too, and other keys have their own allowance.
    assert_problem(submit(client, api.auth()), 429)
    assert client.get("/api/v1/jobs/nope", headers=api.auth(api.other_key)).status_code == 404


def test_rate_limit_in_redis_is_shared_by_every_web_process(make_api_app):
    with redis_database() as url:
        first = make_api_app(api_rate_limit="2/day", rate_limit_storage_url=url)
        # A second web process of the same deployment: its own app, the same database and Redis.
        second = create_app(first.settings)
        try:
            _count_three(first, second)
        finally:
            second.extensions["db_engine"].dispose()
        # The same two apps counting in memory would each allow the key its own two requests.
        with pytest.raises(AssertionError):
            memory = make_api_app(api_rate_limit="2/day")
            other = create_app(memory.settings)
            try:
                _count_three(memory, other)
            finally:
                other.extensions["db_engine"].dispose()


def _count_three(api, second_app) -> None:
    headers = api.auth()
    assert api.client().get("/api/v1/jobs/x", headers=headers).status_code == 404
    assert second_app.test_client().get("/api/v1/jobs/x", headers=headers).status_code == 404
    assert_problem(second_app.test_client().get("/api/v1/jobs/x", headers=headers), 429)


def test_openapi_document_describes_every_operation(api):
    response = api.client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    submit_op = doc["paths"]["/api/v1/jobs"]["post"]
    assert set(submit_op["responses"]) == {
        "200", "202", "400", "401", "403", "413", "415", "422", "429"
    }  # fmt: skip
    assert "RateLimit-Remaining" in submit_op["responses"]["202"]["headers"]
    assert "multipart/form-data" in submit_op["requestBody"]["content"]
    get_op = doc["paths"]["/api/v1/jobs/{job_id}"]["get"]
    assert set(get_op["responses"]) == {"200", "401", "403", "404", "429"}
    assert get_op["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            for status, answer in op["responses"].items():
                if int(status) >= 400:
                    assert list(answer["content"]) == [PROBLEM], (method, path, status)
            if method == "post":
                names = [p["name"] for p in op.get("parameters", [])]
                assert "Idempotency-Key" in names, (method, path)
    job = doc["components"]["schemas"]["JobPublic"]["properties"]
    assert {"token", "label", "decision", "findings"} <= set(job)


def test_docs_page_is_rendered_on_the_server(api):
    response = api.client().get("/api/v1/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "POST /api/v1/jobs" in page and "GET /api/v1/jobs/{job_id}" in page
    assert "JobPublic" in page and "Retry-After" in page and "RateLimit-*" in page
    # Nothing from a CDN: scripts only from this site's own files, no inline script.
    assert not re.search(r'<script(?![^>]*\bsrc="/)', page) and "https://" not in page
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_problem_titles_are_words_and_codes_name_the_kind(api):
    invalid = assert_problem(submit(api.client(), api.auth(), operation="face_melt"), 422)
    assert (invalid["title"], invalid["code"]) == ("Invalid request", "InvalidRequest")
    missing = assert_problem(api.client().get("/api/v1/jobs/nope", headers=api.auth()), 404)
    assert (missing["title"], missing["code"]) == ("Not found", "NotFound")
    wrong = assert_problem(api.client().delete("/api/v1/jobs", headers=api.auth()), 405)
    assert (wrong["title"], wrong["code"]) == ("Method not allowed", "MethodNotAllowed")
    nokey = assert_problem(api.client().get("/api/v1/jobs/nope"), 401)
    assert (nokey["title"], nokey["code"]) == ("API key required", "Unauthorized")


def test_a_json_body_to_the_multipart_operation_is_a_415_naming_what_it_takes(api):
    response = api.client().post(
        "/api/v1/jobs", json={"operation": "face_swap", "source": "me.jpg"}, headers=api.auth()
    )
    body = assert_problem(response, 415)
    assert (body["title"], body["code"]) == ("Unsupported media type", "UnsupportedMediaType")
    assert body["accepted_media_type"] == "multipart/form-data"
    assert "multipart/form-data" in body["detail"] and "application/json" in body["detail"]
    assert "operation, purpose, purpose_detail, source, target" in body["detail"]
    assert "operation" not in body.get("errors", [])  # not "the operation is invalid"
    assert response.headers["Accept-Post"] == "multipart/form-data"
    # A url-encoded form has no files: not the declared type either.
    form = api.client().post("/api/v1/jobs", data={"operation": "face_swap"}, headers=api.auth())
    assert "application/x-www-form-urlencoded" in assert_problem(form, 415)["detail"]


def test_a_form_to_a_json_operation_is_a_415_naming_what_it_takes(api):
    put = api.client().put(
        "/api/v1/webhook", data={"url": "http://127.0.0.1:9/hook"}, headers=api.auth()
    )
    body = assert_problem(put, 415)
    assert body["accepted_media_type"] == "application/json"
    assert "JSON object (application/json)" in body["detail"] and "url, events" in body["detail"]
    assert "Accept-Post" not in put.headers  # a PUT: RFC 9110 has no field for it
    # The public verify operation too, and a body without any Content-Type.
    verify = api.client().post("/api/v1/decisions/verify", data=b"token=x")
    assert "token" in assert_problem(verify, 415)["detail"]
    assert verify.headers["Accept-Post"] == "application/json"
    bare = api.client().put("/api/v1/assurance-minimums", data=b"{}", headers=api.auth())
    assert "no Content-Type" in assert_problem(bare, 415)["detail"]
    # The declared type still goes through (and a JSON type with a suffix is JSON).
    ok = api.client().put(
        "/api/v1/assurance-minimums",
        data=b'{"minimums": {}}',
        content_type="application/merge-patch+json",
        headers=api.auth(),
    )
    assert ok.status_code == 200, ok.get_json()


RATELIMIT = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")


def test_every_answer_to_a_counted_request_says_where_the_key_stands(make_api_app):
    api = make_api_app(api_rate_limit="6/day")  # a window no test run straddles
    client = api.client()
    answers = [
        client.get("/api/v1/assurance-minimums", headers=api.auth()),  # 200
        client.get("/api/v1/jobs/nope", headers=api.auth()),  # 404
        submit(client, api.auth(), operation="face_melt"),  # 422
        client.post("/api/v1/jobs", json={}, headers=api.auth()),  # 415
        client.get("/api/v1/webhook", headers=api.auth()),  # 404 (none configured)
        client.get("/api/v1/webhook/deliveries", headers=api.auth()),  # 200, a list
        client.get("/api/v1/jobs/nope", headers=api.auth()),  # 429
    ]
    assert [a.status_code for a in answers] == [200, 404, 422, 415, 404, 200, 429]
    for answer in answers:
        assert all(name in answer.headers for name in RATELIMIT), answer.headers
        assert answer.headers["RateLimit-Limit"] == "6"
        assert answer.headers["RateLimit-Policy"] == "6;w=86400"
        assert 1 <= int(answer.headers["RateLimit-Reset"]) <= 86400
    assert [int(a.headers["RateLimit-Remaining"]) for a in answers] == [5, 4, 3, 2, 1, 0, 0]
    assert answers[-1].headers["Retry-After"] == answers[-1].headers["RateLimit-Reset"]
    # Another key stands on its own; an answer to no key counted nothing and says nothing.
    theirs = client.get("/api/v1/jobs/nope", headers=api.auth(api.other_key))
    assert theirs.headers["RateLimit-Remaining"] == "5"
    assert not any(name in client.get("/api/v1/jobs/nope").headers for name in RATELIMIT)
    # The public operations limited per client address say it too; the uncounted ones do not.
    status = client.get("/api/v1/decisions/" + "0" * 32 + "/status")
    assert status.status_code == 404 and status.headers["RateLimit-Remaining"] == "5"
    assert "RateLimit-Limit" not in client.get("/api/v1/openapi.json").headers


def _list_operations(doc: dict) -> list[tuple[str, str]]:
    """Every list in the document: a GET whose answer holds an array of resources (objects
    with an `id`) — found from the schemas, so a list added later is found too."""
    schemas = doc["components"]["schemas"]

    def resolve(schema: dict) -> dict:
        return schemas[schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else schema

    found = []
    for path, methods in doc["paths"].items():
        answer = methods.get("get", {}).get("responses", {}).get("200", {})
        schema = answer.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            continue
        for name, prop in resolve(schema).get("properties", {}).items():
            items = prop.get("items") if prop.get("type") == "array" else None
            if items and "id" in resolve(items).get("properties", {}):
                found.append((path, name))
    return found


def _seed_deliveries(api, count: int) -> None:
    """`count` deliveries of the key's provider (two written in the same instant, so the
    order's tie-break is exercised) and as many of the other provider's."""
    with api.app.app_context(), db.unit_of_work() as s:
        now = utcnow()
        for name in ("Acme", "Globex"):
            provider = s.exec(select(Provider).where(Provider.name == name)).one()
            hook = Webhook(
                provider_id=provider.id,
                url="http://127.0.0.1:9/hook",
                events=["job.decided"],
                secret_ciphertext=b"unused",
                secret_wrapped_key=b"unused",
            )
            s.add(hook)
            s.flush()
            for n in range(count):
                s.add(
                    WebhookDelivery(
                        id=new_id(),
                        webhook_id=hook.id,
                        provider_id=provider.id,
                        event="job.decided",
                        body="{}",
                        created_at=now - timedelta(seconds=min(n, count - 2)),
                    )
                )


# How to put items in each list, so its pages can be walked. A list without one fails the test
# below: add its seeder when you add the list.
SEEDERS = {"/api/v1/webhook/deliveries": _seed_deliveries}


def test_every_list_operation_declares_and_honours_pagination(make_api_app):
    api = make_api_app(api_rate_limit="100000/minute")
    doc = api.client().get("/api/v1/openapi.json").get_json()
    lists = _list_operations(doc)
    assert ("/api/v1/webhook/deliveries", "deliveries") in lists
    for path, items in lists:
        op = doc["paths"][path]["get"]
        params = {p["name"]: p for p in op.get("parameters", [])}
        assert {"limit", "cursor"} <= set(params), path
        assert params["limit"]["schema"]["maximum"] == 100, path
        answer = op["responses"]["200"]
        schema = doc["components"]["schemas"][
            answer["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        ]
        assert "next_cursor" in schema["properties"] and "Link" in answer["headers"], path
        assert path in SEEDERS, f"{path} is a list: add its seeder to SEEDERS"
        SEEDERS[path](api, 5)
        client, headers = api.client(), api.auth()
        everything = client.get(path, headers=headers, query_string={"limit": 100}).get_json()
        assert len(everything[items]) == 5 and everything["next_cursor"] is None, path
        seen, pages, query = [], [], {"limit": 2}
        while True:
            page = client.get(path, headers=headers, query_string=query)
            assert page.status_code == 200, page.get_json()
            body = page.get_json()
            pages.append(len(body[items]))
            seen += [item["id"] for item in body[items]]
            if body["next_cursor"] is None:
                assert "Link" not in page.headers
                break
            link = re.fullmatch(r'<([^>]+)>; rel="next"', page.headers["Link"])
            assert link and f"cursor={body['next_cursor']}" in link.group(1), page.headers
            assert link.group(1).startswith(path) and "limit=2" in link.group(1)
            query = {"limit": 2, "cursor": body["next_cursor"]}
        assert pages == [2, 2, 1], path
        assert seen == [item["id"] for item in everything[items]], path  # same order, no repeat
        # Without parameters: the first 50, as before pagination.
        assert len(client.get(path, headers=headers).get_json()[items]) == 5
        for bad in ({"cursor": "not-one-of-ours"}, {"limit": 0}, {"limit": 101}):
            assert_problem(client.get(path, headers=headers, query_string=bad), 422)


def test_the_shipped_client_follows_the_pages(make_api_app):
    api = make_api_app(api_rate_limit="100000/minute")
    _seed_deliveries(api, 5)
    server = make_server("127.0.0.1", 0, api.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = ConsentClient(f"http://127.0.0.1:{server.server_port}", api.key, timeout=10)
    try:
        paged = [d["id"] for d in client.webhook_deliveries(page_size=2)]
        whole = api.client().get(
            "/api/v1/webhook/deliveries", headers=api.auth(), query_string={"limit": 100}
        )
        assert paged == [d["id"] for d in whole.get_json()["deliveries"]] and len(paged) == 5
    finally:
        client.close()
        server.shutdown()
        thread.join()
