"""Tenant isolation, walked from the served OpenAPI document: every operation is called with
provider A's key and provider B's real ids (jobs, consent requests, webhook deliveries, API
keys, decision tokens, the grant behind B's decision, a complaint about B's job) in its path
and its body. An operation that needs a key answers 404 for anything of B's; a public one (no
key, by design: verifying a token, a token's status) answers only about what the request itself
carried. No answer holds any other datum of B's. The same calls with B's own key succeed, so
the ids are real.

An operation this test cannot fill (a new one, or a new id-like field or parameter of an old
one) fails it: add its plan to `PLANS`."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from click.testing import CliRunner
from PIL import Image
from sqlmodel import select
from urllib3 import encode_multipart_formdata

from consent_service import db
from consent_service.cli import main
from consent_service.complaints import service as complaints
from consent_service.consent import service as consent
from consent_service.gate import pipeline
from consent_service.gate.decisions import Analysis, PersonSeen, Signing
from consent_service.providers.models import ApiKey
from consent_service.providers.service import authenticate_key
from consent_service.runtime import services
from consent_service.vocabulary import Operation, Role
from consent_service.webhooks.models import WebhookDelivery
from tests import factories

A_HOOK = "http://127.0.0.1:9/acme-hook"
B_HOOK = "http://127.0.0.1:9/globex-hook"
COMPLAINT_TEXT = "Globex put my face in its advert without asking."
# Names of body fields and query parameters that carry something of a tenant's.
ID_LIKE = re.compile(r"(^|_)(id|ref|jti|token|audience|key)$")


@dataclass
class World:
    """Provider B's real things, and how to call the app as A and as B."""

    api: Any
    a: dict[str, str]  # A's auth header
    b: dict[str, str]  # B's auth header
    b_provider_id: str
    waiting_job: dict  # B's needs_consent job
    allowed_job: dict  # B's allowed job (its token, its findings)
    request: dict  # B's consent request on the waiting job
    request_key: str  # the Idempotency-Key B used for it
    job_key: str  # the Idempotency-Key B used for the waiting job
    delivery_ids: list[str]
    key_id: int
    key_prefix: str
    hook_secret: str
    grant_id: str  # the grant behind B's allow
    complaint_id: str  # a complaint about B's allowed job (B was asked to answer it)
    complaint_reference: str

    @property
    def token(self) -> str:
        return self.allowed_job["token"]

    @property
    def jti(self) -> str:
        # The token's id (the label's ReservedCode1 is its digest, below).
        return jwt.decode(self.token, options={"verify_signature": False})["jti"]

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.token.encode()).hexdigest()

    def path_values(self) -> list[str]:
        """Every id of B's, each tried in every path parameter."""
        return [
            self.waiting_job["id"],
            self.allowed_job["id"],
            self.request["id"],
            *self.delivery_ids,
            str(self.key_id),
            self.key_prefix,
            self.b_provider_id,
            self.jti,
            self.digest,
            self.grant_id,
            self.complaint_id,
            self.waiting_job["findings"][0]["subject_ref"],
        ]

    def secrets(self) -> set[str]:
        """What no answer to A may contain (unless the request itself carried it)."""
        jobs = (self.waiting_job, self.allowed_job)
        return {
            self.b_provider_id,
            "Globex",
            B_HOOK,
            self.hook_secret,
            self.key_prefix,
            self.request["id"],
            self.request_key,
            self.job_key,
            self.token,
            self.jti,
            self.digest,
            self.grant_id,
            self.complaint_id,
            self.complaint_reference,
            COMPLAINT_TEXT,
            *self.delivery_ids,
            *(j["id"] for j in jobs),
            *(m["sha256"] for j in jobs for m in j["media"]),
            *(f["subject_ref"] for j in jobs for f in j["findings"] if f["subject_ref"]),
        }


@dataclass
class Call:
    method: str
    path: str
    json: dict | None = None
    form: list | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # What A must get: 404 for B's things behind a key; what a public or creating
    # operation answers anyone.
    expect: int = 404
    # B's values the request itself carried, which a public operation may answer with.
    echoes: frozenset[str] = frozenset()
    # What B gets for the same call with its own key (None: not a thing B owns; skip).
    owner_expect: int | None = None


@dataclass(frozen=True)
class Plan:
    """How to fill one documented operation with B's ids, and which id-like fields of its
    body and query it fills (the test fails when the document grows one it does not)."""

    calls: Callable[[World, str], list[Call]]  # (world, path template) → calls
    fills: frozenset[str] = frozenset()


def _each_path_value(expect_for: Callable[[World, str], tuple[int, frozenset[str]]] | None = None):
    """Every B id in the operation's path parameter(s): 404, unless `expect_for` says what a
    public operation answers for a value (e.g. a token's status for B's own jti)."""

    def calls(w: World, template: str) -> list[Call]:
        out = []
        for value in w.path_values():
            path = re.sub(r"\{[^}]+\}", value, template)
            expect, echoes = expect_for(w, value) if expect_for else (404, frozenset())
            out.append(Call("GET", path, expect=expect, echoes=echoes))
        return out

    return calls


def _owned_get(kind: str):
    """GET of one of B's things by id: 404 for A; B itself gets it."""

    def calls(w: World, template: str) -> list[Call]:
        own = {
            "job": [w.waiting_job["id"], w.allowed_job["id"]],
            "request": [w.request["id"]],
            "complaint": [w.complaint_id],
        }
        out = _each_path_value()(w, template)
        for call in out:
            if call.path.rsplit("/", 1)[-1] in own[kind]:
                call.owner_expect = 200
        return out

    return calls


def _status_of(w: World, value: str) -> tuple[int, frozenset[str]]:
    # Public by design: a token's id or digest answers its status (and echoes the id).
    if value in (w.jti, w.digest):
        return 200, frozenset({w.jti})
    return 404, frozenset()


def _submit_jobs(w: World, template: str) -> list[Call]:
    # B's Idempotency-Key from A makes a new job of A's, never answers with B's job.
    body = [("operation", "face_swap"), ("source", ("a.jpg", b"A's own image"))]
    return [
        Call(
            "POST",
            template,
            form=body,
            headers={"Idempotency-Key": w.job_key},
            expect=202,
        )
    ]


def _open_requests(w: World, template: str) -> list[Call]:
    waiting, allowed = w.waiting_job["id"], w.allowed_job["id"]
    ref = w.waiting_job["findings"][0]["subject_ref"]
    bodies = [
        {"job_id": waiting, "finding": 0},
        {"job_id": waiting, "subject_ref": ref},
        {"job_id": waiting, "finding": 0, "email": "someone@example.org"},
        {"job_id": waiting, "finding": 0, "operation": "face_swap", "roles": ["source"]},
        {"job_id": allowed, "finding": 0},
        {"job_id": w.request["id"], "finding": 0},
    ]
    calls = [Call("POST", template, json=body, owner_expect=None) for body in bodies]
    calls[0].owner_expect = 202  # B may ask about its own job
    # B's Idempotency-Key from A: a new request of A's, never B's request.
    calls.append(
        Call(
            "POST",
            template,
            json={"email": "someone@example.org", "operation": "face_swap", "roles": ["source"]},
            headers={"Idempotency-Key": w.request_key},
            expect=202,
        )
    )
    return calls


def _verify(w: World, template: str) -> list[Call]:
    # Public by design: the answer is the token's own claims and its status; the grants'
    # present state only for the grants the token names.
    carried = frozenset(
        {
            w.token,
            w.jti,
            w.b_provider_id,  # aud
            w.allowed_job["id"],  # sub
            w.grant_id,
            *(m["sha256"] for m in w.allowed_job["media"]),
            *(f["subject_ref"] for f in w.allowed_job["findings"] if f["subject_ref"]),
        }
    )
    return [
        Call("POST", template, json={"token": w.token}, expect=200, echoes=carried),
        Call(
            "POST",
            template,
            json={"token": w.token, "audience": w.b_provider_id},
            expect=200,
            echoes=carried,
        ),
        # Asking it to be A's: refused, and saying nothing of B.
        Call("POST", template, json={"token": w.token, "audience": _a_id(w)}, expect=422),
    ]


def _a_id(w: World) -> str:
    with w.api.app.app_context():
        return authenticate_key(db.session(), w.api.key).provider.id


def _plain(method: str, expect: int, json_body: dict | None = None):
    def calls(w: World, template: str) -> list[Call]:
        return [Call(method, template, json=json_body, expect=expect)]

    return calls


def _answer_complaints(w: World, template: str) -> list[Call]:
    """An answer to each of B's ids as a complaint: 404 for A; B answers its own."""
    out = []
    for value in w.path_values():
        call = Call("POST", template.replace("{complaint_id}", value), json={"answer": "Ours?"})
        call.owner_expect = 200 if value == w.complaint_id else None
        out.append(call)
    return out


def _label_jobs(w: World, template: str) -> list[Call]:
    """A file to label under each of B's ids as a job: 404 for A; B labels its allowed job."""
    picture = io.BytesIO()
    Image.new("RGB", (16, 16), "gray").save(picture, "JPEG")
    out = []
    for value in w.path_values():
        form = [("file", ("out.jpg", picture.getvalue()))]
        call = Call("POST", template.replace("{job_id}", value), form=form)
        call.owner_expect = 200 if value == w.allowed_job["id"] else None
        out.append(call)
    return out


def _checkpoint(w: World, template: str) -> list[Call]:
    # Public and global: positions in the one audit log, no tenant's ids.
    return [
        Call("GET", template, expect=200),
        Call("GET", f"{template}?from=1&entry=1", expect=200),
    ]


PLANS: dict[str, Plan] = {
    "POST /api/v1/jobs": Plan(_submit_jobs),
    "GET /api/v1/jobs/{job_id}": Plan(_owned_get("job")),
    "POST /api/v1/jobs/{job_id}/label": Plan(_label_jobs),
    "POST /api/v1/consent-requests": Plan(
        _open_requests, fills=frozenset({"job_id", "subject_ref"})
    ),
    "GET /api/v1/consent-requests/{request_id}": Plan(_owned_get("request")),
    "PUT /api/v1/webhook": Plan(_plain("PUT", 200, {"url": A_HOOK})),
    "GET /api/v1/webhook": Plan(_plain("GET", 200)),
    "GET /api/v1/webhook/deliveries": Plan(_plain("GET", 200)),
    # A's own settings, no ids; `{}` so that A's other calls keep deciding as before.
    "GET /api/v1/assurance-minimums": Plan(_plain("GET", 200)),
    "PUT /api/v1/assurance-minimums": Plan(_plain("PUT", 200, {"minimums": {}})),
    "POST /api/v1/decisions/verify": Plan(_verify, fills=frozenset({"token", "audience"})),
    "GET /api/v1/decisions/{token_ref}/status": Plan(_each_path_value(_status_of)),
    "GET /.well-known/jwks.json": Plan(_plain("GET", 200)),
    "GET /api/v1/purposes": Plan(_plain("GET", 200)),
    "GET /api/v1/audit/checkpoint": Plan(_checkpoint),
    "GET /api/v1/complaints/{complaint_id}": Plan(_owned_get("complaint")),
    "POST /api/v1/complaints/{complaint_id}/answer": Plan(_answer_complaints),
}


# ---------------------------------------------------------------------------- B's world
@pytest.fixture(scope="module")
def world(make_api_app) -> Iterator[World]:
    api = make_api_app(api_rate_limit="100000/minute")
    client = api.client()
    a, b = api.auth(api.key), api.auth(api.other_key)
    hook = client.put("/api/v1/webhook", json={"url": B_HOOK}, headers=b)
    assert hook.status_code == 200, hook.get_json()
    assert client.put("/api/v1/webhook", json={"url": A_HOOK}, headers=a).status_code == 200
    job_key, request_key = "globex-job-1", "globex-request-1"
    waiting_id = _submit(client, {**b, "Idempotency-Key": job_key})
    allowed_id = _submit(client, b)
    with api.app.app_context():
        svc = services()
        b_provider_id = authenticate_key(db.session(), api.other_key).provider.id
        with db.unit_of_work() as s, factories.bound(s):
            asked = factories.SubjectFactory().id  # no grant: needs consent
            consenting = factories.SubjectFactory().id
        with db.unit_of_work() as s:
            grant = consent.grant(
                s,
                svc.audit_key,
                consenting,
                consent.GrantRequest([Operation.FACE_SWAP], [Role.SOURCE], True, []),
                consent.Evidence(actor="test", identity_method="test"),
            )
        signing = Signing(svc.audit_key, svc.decision_signer, svc.pseudonyms)
        for job_id, subject_id in ((waiting_id, asked), (allowed_id, consenting)):
            person = PersonSeen(0, Role.SOURCE, (1, 2, 3, 4), subject_id, False)
            with db.unit_of_work() as s:
                pipeline.record(s, job_id, Analysis([person]), signing, svc.media_store)
    waiting = client.get(f"/api/v1/jobs/{waiting_id}", headers=b).get_json()
    allowed = client.get(f"/api/v1/jobs/{allowed_id}", headers=b).get_json()
    assert (waiting["decision"], allowed["decision"]) == ("needs_consent", "allow")
    opened = client.post(
        "/api/v1/consent-requests",
        json={"job_id": waiting_id, "finding": 0},
        headers={**b, "Idempotency-Key": request_key},
    )
    assert opened.status_code == 202, opened.get_json()
    with api.app.app_context():
        s = db.session()
        deliveries = s.exec(
            select(WebhookDelivery.id).where(WebhookDelivery.provider_id == b_provider_id)
        ).all()
        key = s.exec(select(ApiKey).where(ApiKey.provider_id == b_provider_id)).one()
    assert len(deliveries) == 2  # job.decided, twice
    with api.app.app_context(), db.unit_of_work() as s:
        svc = services()
        complaint, _ = complaints.file_complaint(
            s,
            svc.audit_key,
            svc.evidence_store,
            svc.decision_keys.public_keys(),
            complaints.Limits(48, 15),
            complaints.ComplaintSpec(
                kind="edited_without_consent",
                description=COMPLAINT_TEXT,
                email="me@example.org",
                language="en",
                named=allowed["token"],
            ),
            evidence_max_bytes=1000,
        )
        complaint_id, complaint_reference = complaint.id, complaint.reference
    env = {"CONSENT_SERVICE_HOME": str(api.settings.home), "BROKER_URL": "memory://"}
    made = CliRunner().invoke(main, ["audit", "checkpoint"], env=env)
    assert made.exit_code == 0, made.output
    yield World(
        api=api,
        a=a,
        b=b,
        b_provider_id=b_provider_id,
        waiting_job=waiting,
        allowed_job=allowed,
        request=opened.get_json(),
        request_key=request_key,
        job_key=job_key,
        delivery_ids=list(deliveries),
        key_id=key.id or 0,
        key_prefix=key.prefix,
        hook_secret=hook.get_json()["secret"],
        grant_id=grant.grant_id,
        complaint_id=complaint_id,
        complaint_reference=complaint_reference,
    )


def _submit(client, headers: dict[str, str]) -> str:
    body, content_type = encode_multipart_formdata(
        [("operation", "face_swap"), ("source", ("b.jpg", b"B's image"))]
    )
    answer = client.post("/api/v1/jobs", data=body, content_type=content_type, headers=headers)
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["id"]


# ---------------------------------------------------------------------------- the walk
def _document_operations(document: dict) -> dict[str, dict]:
    return {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "put", "post", "patch", "delete")
    }


def _resolve(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _id_like_inputs(document: dict, operation: dict) -> set[str]:
    """The id-like names of the operation's query parameters and body fields."""
    names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    for content in operation.get("requestBody", {}).get("content", {}).values():
        names |= set(_resolve(document, content["schema"]).get("properties", {}))
    return {n for n in names if ID_LIKE.search(n)}


def _send(client, call: Call, auth: dict[str, str]):
    headers = {**auth, **call.headers}
    if call.form is not None:
        body, content_type = encode_multipart_formdata(call.form)
        return client.open(
            call.path, method=call.method, data=body, content_type=content_type, headers=headers
        )
    return client.open(call.path, method=call.method, json=call.json, headers=headers)


def _leaks(response, secrets: set[str]) -> set[str]:
    seen = response.get_data(as_text=True) + json.dumps(dict(response.headers))
    return {s for s in secrets if s and s in seen}


def test_every_documented_operation_has_a_plan(world):
    document = world.api.client().get("/api/v1/openapi.json").get_json()
    operations = _document_operations(document)
    unplanned = sorted(set(operations) - set(PLANS))
    assert not unplanned, f"no tenant-isolation plan for {unplanned}: add one to PLANS"
    assert not sorted(set(PLANS) - set(operations)), "a plan for an operation that is gone"
    for label, operation in operations.items():
        unfilled = _id_like_inputs(document, operation) - PLANS[label].fills
        assert not unfilled, f"{label}: id-like inputs {sorted(unfilled)} are not filled"


def test_provider_a_gets_nothing_of_provider_bs_from_any_operation(world):
    document = world.api.client().get("/api/v1/openapi.json").get_json()
    client, secrets = world.api.client(), world.secrets()
    tried, failures = 0, []
    for label, operation in sorted(_document_operations(document).items()):
        template = label.split(" ", 1)[1]
        public = operation.get("security") == []
        plan = PLANS.get(label)
        if plan is None:
            failures.append(f"{label}: no plan, so not walked")
            continue
        for call in plan.calls(world, template):
            answer = _send(client, call, world.a)
            tried += 1
            if answer.status_code != call.expect:
                failures.append(f"{label} {call.path} {call.json}: {answer.status_code}")
            leaked = _leaks(answer, secrets - call.echoes)
            if leaked:
                failures.append(f"{label} {call.path} {call.json} leaks {sorted(leaked)}")
            if call.echoes and not public:
                failures.append(f"{label}: only a public operation may answer about B")
            if call.owner_expect is not None:
                own = _send(client, call, world.b)
                if own.status_code != call.owner_expect:  # the control: the id is B's, and real
                    failures.append(f"{label} {call.path} as B: {own.status_code}")
    assert not failures, "\n".join(failures)
    # Every B id in every path parameter, plus the bodies: a walk, not a sample.
    assert tried >= 3 * len(world.path_values()) + 10


def test_a_key_is_needed_wherever_the_document_says(world):
    """The public operations are exactly the five that answer anyone: the keys, the audit
    checkpoint, the purpose vocabulary, verifying a token and a token's status. Every other one
    refuses no key."""
    document = world.api.client().get("/api/v1/openapi.json").get_json()
    public = {
        label for label, op in _document_operations(document).items() if op.get("security") == []
    }
    assert public == {
        "GET /.well-known/jwks.json",
        "GET /api/v1/audit/checkpoint",
        "GET /api/v1/purposes",
        "POST /api/v1/decisions/verify",
        "GET /api/v1/decisions/{token_ref}/status",
    }
    client = world.api.client()
    for label in sorted(set(_document_operations(document)) - public):
        method, template = label.split(" ", 1)
        path = re.sub(r"\{[^}]+\}", world.allowed_job["id"], template)
        answer = client.open(path, method=method)
        assert answer.status_code == 401, label
        assert not _leaks(answer, world.secrets())
