"""The shipped Python client covers the whole API: one method per operation of the served OpenAPI
document (the table below, checked both ways), answers typed with the service's own fields, and
each method called over HTTP against a real app on a loopback port."""

from __future__ import annotations

import inspect
import threading
import typing
from collections.abc import Iterator
from pathlib import Path

import c2pa
import pytest
from click.testing import CliRunner
from PIL import Image
from pydantic import BaseModel
from sqlmodel import select

from consent_service import client as sdk
from consent_service import db
from consent_service.audit.schemas import (
    CheckpointDocument,
    ConsistencyProof,
    InclusionProof,
)
from consent_service.cli import main
from consent_service.client import ApiError, ConsentClient, ScopeMissing
from consent_service.complaints.schemas import ComplaintForProvider
from consent_service.consent.schemas import PurposePublic
from consent_service.consent_requests.schemas import ConsentRequestPublic
from consent_service.gate.models import GateJob
from consent_service.gate.schemas import (
    DecisionStatus,
    FindingPublic,
    GrantStanding,
    JobPublic,
    MediaPublic,
    SupersedingDecision,
    VerifyResult,
)
from consent_service.labels.provenance import CONSENT_ASSERTION
from consent_service.providers.models import Provider
from consent_service.providers.service import issue_key
from consent_service.timeutil import utcnow
from consent_service.tokens.schemas import Jwks, PublicJwk
from consent_service.vocabulary import JobStatus, Scope
from consent_service.webhooks.schemas import DeliveryPublic, WebhookPublic
from tests import factories
from tests.support import allow_job, serve

# operationId in /api/v1/openapi.json -> the ConsentClient method that performs it.
OPERATIONS = {
    "post_api_submit_job": "submit",
    "get_api_get_job": "job",
    "post_api_verify_decision": "verify",
    "get_api_decision_status": "status",
    "get_tokens_jwks": "jwks",
    "get_audit_checkpoint": "audit_checkpoint",
    "get_api_get_assurance_minimums": "assurance_minimums",
    "put_api_put_assurance_minimums": "set_assurance_minimums",
    "post_labels_api_label_job": "label",
    "post_consent_requests_api_create_request": "request_consent",
    "get_consent_requests_api_get_request": "consent_request",
    "get_webhooks_get_webhook": "webhook",
    "put_webhooks_put_webhook": "set_webhook",
    "get_webhooks_list_deliveries": "webhook_deliveries",
    "get_complaints_api_get_complaint": "complaint",
    "post_complaints_api_answer_complaint": "answer_complaint",
    "get_consent_api_list_purposes": "purposes",
}
# Methods that are conveniences over the operations above, not operations of their own.
CONVENIENCES = {"wait", "gate", "close"}

# Each answer's TypedDict in the client and the response model the service builds it with.
SHAPES: list[tuple[type, type[BaseModel]]] = [
    (sdk.Job, JobPublic),
    (sdk.Media, MediaPublic),
    (sdk.Finding, FindingPublic),
    (sdk.DecisionStatus, DecisionStatus),
    (sdk.SupersedingDecision, SupersedingDecision),
    (sdk.GrantStanding, GrantStanding),
    (sdk.Verification, VerifyResult),
    (sdk.ConsentRequest, ConsentRequestPublic),
    (sdk.Webhook, WebhookPublic),
    (sdk.Delivery, DeliveryPublic),
    (sdk.Complaint, ComplaintForProvider),
    (sdk.Purpose, PurposePublic),
    (sdk.PublicJwk, PublicJwk),
    (sdk.Jwks, Jwks),
    (sdk.ConsistencyProof, ConsistencyProof),
    (sdk.InclusionProof, InclusionProof),
    (sdk.AuditCheckpoint, CheckpointDocument),
]


@pytest.fixture(scope="module")
def api(make_api_app):
    return make_api_app(api_rate_limit="100000/minute")


@pytest.fixture(scope="module")
def url(api) -> Iterator[str]:
    with serve(api.app) as base:
        yield base


@pytest.fixture
def client(api, url) -> Iterator[ConsentClient]:
    c = ConsentClient(url, api.key, timeout=10)
    yield c
    c.close()


def allow(api, job_id: str) -> None:
    """Decide a submitted job `allow` as the worker would (tests.support.allow_job)."""
    allow_job(api.app, job_id)


def test_every_operation_of_the_document_has_a_client_method(api):
    document = api.client().get("/api/v1/openapi.json").get_json()
    documented = {
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    assert documented - OPERATIONS.keys() == set(), "operations the client lacks"
    assert OPERATIONS.keys() - documented == set(), "client methods for no operation"
    methods = {
        name
        for name, value in vars(ConsentClient).items()
        if callable(value) and not name.startswith("_")
    }
    assert set(OPERATIONS.values()) <= methods
    assert methods - set(OPERATIONS.values()) == CONVENIENCES
    # A list answered a page at a time is read through every page: its method is a generator.
    paginated = {
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict)
        and any(p["name"] == "cursor" for p in operation.get("parameters", []))
    }
    assert "get_webhooks_list_deliveries" in paginated
    for operation_id in paginated:
        assert inspect.isgeneratorfunction(getattr(ConsentClient, OPERATIONS[operation_id]))


@pytest.mark.parametrize(("shape", "model"), SHAPES, ids=lambda v: v.__name__)
def test_each_answer_is_typed_with_the_service_fields(shape, model):
    assert set(typing.get_type_hints(shape)) == set(model.model_fields)


def test_verify_status_and_keys(api, client, url, tmp_path):
    image = tmp_path / "me.jpg"
    image.write_bytes(b"not decoded: the analysis is given")
    job = client.submit("face_swap", source=image)
    allow(api, job["id"])
    token = client.wait(job["id"], timeout=10)["token"]
    assert token

    public = ConsentClient(url)  # no key: whoever holds the file checks it
    checked = public.verify(token)
    assert checked["valid"] and not checked["expired"]
    assert checked["claims"]["sub"] == job["id"] and checked["claims"]["decision"] == "allow"
    assert checked["status"] is not None and checked["status"]["status"] == "valid"
    assert [g["status"] for g in checked["grants"]] == ["active"]
    assert public.status(checked["claims"]["jti"])["status"] == "valid"
    assert checked["kid"] in {key["kid"] for key in public.jwks()["keys"]}
    assert public.verify(token, audience=checked["claims"]["aud"])["valid"]
    with pytest.raises(ApiError) as refused:
        public.verify(token, audience="someone-else")
    assert refused.value.status == 422
    with pytest.raises(ApiError) as forged:
        public.verify("a.b.c")
    assert forged.value.status == 422
    public.close()


def test_purposes_and_a_job_that_states_one(api, client, url, tmp_path):
    public = ConsentClient(url)  # the vocabulary needs no key
    codes = [p["code"] for p in public.purposes()]
    assert "education" in codes and "advertising" in codes
    public.close()
    image = tmp_path / "me.jpg"
    image.write_bytes(b"not decoded: the analysis is given")
    job = client.submit(
        "face_swap", source=image, purpose="education", purpose_detail="A lesson on history"
    )
    assert (job["purpose"], job["purpose_detail"]) == ("education", "A lesson on history")
    with pytest.raises(ApiError) as unknown:
        client.submit("face_swap", source=image, purpose="no_such_purpose")
    assert unknown.value.status == 422


def test_audit_checkpoint(api, url):
    public = ConsentClient(url)
    env = {"CONSENT_SERVICE_HOME": str(api.settings.home), "BROKER_URL": "memory://"}
    assert CliRunner().invoke(main, ["audit", "checkpoint", "--force"], env=env).exit_code == 0
    head = public.audit_checkpoint()
    assert head["size"] >= 1 and head["verifier_key"] in head["verifier_keys"]
    assert head["consistency"] is None and head["inclusion"] is None
    proved = public.audit_checkpoint(from_size=1, entry=1)
    assert proved["consistency"] is not None and proved["consistency"]["first"] == 1
    assert proved["inclusion"] is not None and proved["inclusion"]["entry"] == 1
    public.close()


def test_consent_requests(api, client, url):
    asked = client.request_consent(
        email="ana@example.com",
        operation="face_swap",
        roles=["source"],
        purpose="Our trailer",
        idempotency_key="ask-ana-1",
    )
    assert asked["status"] == "pending" and asked["email"] == "ana@example.com"
    assert asked["purpose"] == "Our trailer" and asked["roles"] == ["source"]
    again = client.request_consent(
        email="ana@example.com",
        operation="face_swap",
        roles=["source"],
        purpose="Our trailer",
        idempotency_key="ask-ana-1",
    )
    assert again["id"] == asked["id"]
    assert client.consent_request(asked["id"]) == asked
    other = ConsentClient(url, api.other_key)
    with pytest.raises(ApiError) as hidden:
        other.consent_request(asked["id"])
    assert hidden.value.status == 404
    other.close()


def test_webhook_settings(api, client, url):
    with pytest.raises(ApiError) as none_yet:
        client.webhook()
    assert none_yet.value.status == 404
    first = client.set_webhook("https://hooks.example.com/consent", events=["job.decided"])
    assert first["secret"] and first["events"] == ["job.decided"] and first["active"]
    read = client.webhook()
    assert "secret" not in read and read["url"] == "https://hooks.example.com/consent"
    paused = client.set_webhook("https://hooks.example.com/consent", active=False)
    assert "secret" not in paused and not paused["active"]
    rotated = client.set_webhook("https://hooks.example.com/consent", rotate_secret=True)
    assert rotated["secret"] != first["secret"]
    assert list(client.webhook_deliveries()) == []


def acme(s) -> Provider:
    return s.exec(select(Provider).where(Provider.name == "Acme")).one()


def test_a_key_without_the_scope_gets_scope_missing(api, url):
    with api.app.app_context(), db.unit_of_work() as s:
        key = issue_key(s, acme(s), "reader", scopes=[Scope.JOBS_READ])
    reader = ConsentClient(url, key)
    with pytest.raises(ScopeMissing) as refused:
        reader.set_webhook("https://hooks.example.com/x")
    assert refused.value.required_scope == "webhooks:admin"
    assert refused.value.key_scopes == ["jobs:read"]
    reader.close()


def test_complaints(api, client, url):
    with api.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        complaint_id = factories.ComplaintFactory(
            provider_id=acme(s).id,
            provider_asked_at=utcnow(),
            provider_question="Is this yours?",
        ).id
    read = client.complaint(complaint_id)
    assert read["id"] == complaint_id and read["question"] == "Is this yours?"
    assert read["answer"] is None
    answered = client.answer_complaint(complaint_id, "Taken down.", content_removed=True)
    assert answered["answer"] == "Taken down." and answered["content_removed"] is True
    assert client.complaint(complaint_id)["answered_at"] is not None
    other = ConsentClient(url, api.other_key)
    with pytest.raises(ApiError) as hidden:
        other.complaint(complaint_id)
    assert hidden.value.status == 404
    other.close()


# ------------------------------------------------------------------- the README's quick start
def readme_snippet() -> str:
    """The provider quick start: the python block after "From Python" in For providers (API)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## For providers (API)") :]
    start = section.index("```python\n", section.index("From Python")) + len("```python\n")
    return section[start : section.index("```\n", start)]


def test_the_readme_quick_start_runs_as_written(make_api_app, tmp_path, monkeypatch):
    api = make_api_app(api_rate_limit="100000/minute")  # its own: the block configures a webhook
    stop = threading.Event()

    def worker() -> None:
        # Stands in for the Celery worker: each queued job is allowed (see `allow`).
        while not stop.wait(0.05):
            with api.app.app_context():
                queued = db.session().exec(
                    select(GateJob.id).where(GateJob.status == JobStatus.QUEUED.value)
                )
                ids = list(queued)
            for job_id in ids:
                allow(api, job_id)

    working = threading.Thread(target=worker, daemon=True)
    working.start()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "me.jpg").write_bytes(b"not decoded: the analysis is given")
    (tmp_path / "scene.jpg").write_bytes(b"not decoded either")
    Image.new("RGB", (64, 48), "teal").save(tmp_path / "edited.jpg", "JPEG")
    snippet = readme_snippet()
    assert "ConsentClient(" in snippet and 'client.gate("face_swap"' in snippet
    namespace: dict = {"api_key": api.key}
    with serve(api.app) as local:
        try:
            exec(  # noqa: S102 - the README's own block, run to prove it works as written
                compile(snippet.replace("http://127.0.0.1:5000", local), "README.md", "exec"),
                namespace,
            )
        finally:
            stop.set()
            working.join()
            if "client" in namespace:
                namespace["client"].close()
    assert namespace["job"]["decision"] == "allow"
    assert namespace["checked"]["status"]["status"] == "valid"
    with c2pa.Reader(str(tmp_path / "labelled.jpg")) as reader:
        assert CONSENT_ASSERTION in {a["label"] for a in reader.get_active_manifest()["assertions"]}
    assert namespace["asked"]["status"] == "pending" and namespace["secret"]
    assert namespace["deliveries"] == []
    minimums = api.client().get("/api/v1/assurance-minimums", headers=api.auth()).get_json()
    assert minimums == {"minimums": {"face_swap": "live"}}
