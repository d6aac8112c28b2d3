"""Assurance levels through the real app (issue 9, item 4): a provider's minimum per operation
(API and portal, audited, each provider its own), what a job, its findings, the OpenAPI document
and the person's ledger say about it, consent requests that cannot raise it, and uploads only
where the operator turns them on. Decisions themselves are recorded by the gate's pipeline
(tests/unit/gate/test_pipeline.py) and end to end by a real worker (tests/e2e/test_gate.py)."""

from __future__ import annotations

import re
import threading

import pytest
from click.testing import CliRunner
from sqlmodel import select
from werkzeug.serving import make_server

from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.audit.models import AuditEvent
from consent_service.cli import main
from consent_service.client import ApiError, ConsentClient
from consent_service.portal.service import add_staff
from consent_service.providers.models import Provider
from consent_service.runtime import services
from tests import factories
from tests.support import (
    Person,
    accept_invitation,
    csrf_token,
    invitation_path,
    set_up_two_factor,
    sign_in,
    verified_sign_up,
)

PASSWORD = "a long enough password"
MINIMUMS = "/api/v1/assurance-minimums"


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app()


def _provider_id(site, name: str) -> str:
    with site.app.app_context():
        return db.session().exec(select(Provider).where(Provider.name == name)).one().id


def _events(site, kind: str) -> list[AuditEvent]:
    with site.app.app_context():
        return list(db.session().exec(select(AuditEvent).where(AuditEvent.event_type == kind)))


# ---------------------------------------------------------------------------- the API
def test_a_provider_sets_reads_and_clears_its_minimums(site):
    client = site.client()
    assert client.get(MINIMUMS, headers=site.auth()).get_json() == {"minimums": {}}
    wanted = {"minimums": {"face_swap": "live", "voice_cloning": "reviewed"}}
    put = client.put(MINIMUMS, json=wanted, headers=site.auth())
    assert put.status_code == 200 and put.get_json() == wanted
    assert client.get(MINIMUMS, headers=site.auth()).get_json() == wanted
    # Another provider's settings are its own.
    other = client.get(MINIMUMS, headers=site.auth(site.other_key))
    assert other.get_json() == {"minimums": {}}
    # A PUT replaces the whole set: left out means none.
    replaced = client.put(
        MINIMUMS, json={"minimums": {"face_swap": "reviewed"}}, headers=site.auth()
    )
    assert replaced.get_json() == {"minimums": {"face_swap": "reviewed"}}
    audited = [e for e in _events(site, "provider.assurance_minimums_changed")]
    acme = _provider_id(site, "Acme")
    assert [(e.actor, e.payload["from"], e.payload["to"]) for e in audited[-2:]] == [
        (f"provider:{acme}", {}, wanted["minimums"]),
        (f"provider:{acme}", wanted["minimums"], {"face_swap": "reviewed"}),
    ]
    # The same set again changes nothing and audits nothing.
    client.put(MINIMUMS, json={"minimums": {"face_swap": "reviewed"}}, headers=site.auth())
    assert len(_events(site, "provider.assurance_minimums_changed")) == len(audited)
    cleared = client.put(MINIMUMS, json={"minimums": {}}, headers=site.auth())
    assert cleared.get_json() == {"minimums": {}}


@pytest.mark.parametrize(
    "body",
    [
        {"minimums": {"face_swap": "excellent"}},
        {"minimums": {"face_melt": "live"}},
        {"minimums": {"face_swap": None}},
        {"minimums": {}, "extra": 1},
        {},
        None,
    ],
)
def test_a_malformed_setting_is_refused_and_changes_nothing(site, body):
    client = site.client()
    client.put(
        MINIMUMS, json={"minimums": {"face_swap": "live"}}, headers=site.auth(site.other_key)
    )
    answer = client.put(MINIMUMS, json=body, headers=site.auth(site.other_key))
    # No body at all (no Content-Type) is not JSON: a 415; a JSON body that is wrong, a 422.
    assert answer.status_code == (415 if body is None else 422)
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    kept = client.get(MINIMUMS, headers=site.auth(site.other_key)).get_json()
    assert kept == {"minimums": {"face_swap": "live"}}


def test_the_shipped_client_reads_and_sets_the_minimums(make_api_app):
    api = make_api_app()
    server = make_server("127.0.0.1", 0, api.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = ConsentClient(f"http://127.0.0.1:{server.server_port}", api.key, timeout=10)
    try:
        assert client.assurance_minimums() == {}
        assert client.set_assurance_minimums({"face_swap": "live"}) == {"face_swap": "live"}
        assert client.assurance_minimums() == {"face_swap": "live"}
        with pytest.raises(ApiError) as refused:
            client.set_assurance_minimums({"face_swap": "certain"})
        assert refused.value.status == 422
    finally:
        client.close()
        server.shutdown()
        thread.join()


def test_the_settings_need_an_api_key(site):
    assert site.client().get(MINIMUMS).status_code == 401
    assert site.client().put(MINIMUMS, json={"minimums": {}}).status_code == 401


def test_the_openapi_document_names_the_reason_and_the_levels(site):
    doc = site.client().get("/api/v1/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    assert "assurance_too_low" in schemas["Reason"]["enum"]
    assert "assurance_too_low" in schemas["Outcome"]["enum"]
    assert schemas["Assurance"]["enum"] == ["uploaded", "live", "reviewed"]
    job = schemas["JobPublic"]["properties"]
    assert job["reasons"]["items"] == {"$ref": "#/components/schemas/Reason"}
    assert "assurance_required" in job
    assert "assurance" in schemas["FindingPublic"]["properties"]
    assert {"get", "put"} <= set(doc["paths"][MINIMUMS])
    put = doc["paths"][MINIMUMS]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AssuranceMinimums"
    }


def _job_with(site, provider: str, outcome: str, level: str | None, required: str | None):
    """A decided job in which one person (a new account) was found with `outcome`."""
    with site.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        subject = factories.SubjectFactory(assurance=level)
        job = factories.GateJobFactory(provider_id=_provider_id(site, provider), status="decided")
        factories.FindingFactory(
            job=job, outcome=outcome, subject_id=subject.id, box=[1, 2, 3, 4], assurance=level
        )
        factories.DecisionFactory(
            job=job, decision="needs_consent", reasons=[outcome], assurance_required=required
        )
        return job.id, subject.id


def test_a_job_names_the_level_required_and_each_person_s_level(site):
    job_id, _ = _job_with(site, "Acme", "assurance_too_low", "uploaded", "live")
    job = site.client().get(f"/api/v1/jobs/{job_id}", headers=site.auth()).get_json()
    assert (job["decision"], job["reasons"]) == ("needs_consent", ["assurance_too_low"])
    assert job["assurance_required"] == "live"
    assert [(f["outcome"], f["assurance"]) for f in job["findings"]] == [
        ("assurance_too_low", "uploaded")
    ]


def test_no_consent_request_can_be_opened_for_a_person_below_the_minimum(site):
    job_id, _ = _job_with(site, "Acme", "assurance_too_low", "uploaded", "live")
    answer = site.client().post(
        "/api/v1/consent-requests", json={"job_id": job_id, "finding": 0}, headers=site.auth()
    )
    assert answer.status_code == 422
    assert "enroll again with a live consent session" in answer.get_json()["detail"]


# ---------------------------------------------------------------------------- the portal
def _staff(site, email: str, role: str) -> Person:
    with site.app.app_context(), db.unit_of_work() as s:
        acme = s.exec(select(Provider).where(Provider.name == "Acme")).one()
        invitation = add_staff(s, services().audit_key, acme, email, role).invitation
    person = Person(site.client())
    accept_invitation(person, invitation_path(site.app, invitation), PASSWORD)
    assert sign_in(person, email, PASSWORD, "/portal/").status_code == 302
    set_up_two_factor(person)
    return person


def test_an_admin_sets_the_minimums_in_the_portal_and_a_viewer_only_reads_them(site):
    admin = _staff(site, "ada@acme.example", "admin")
    page = admin.get("/portal/assurance")
    assert "Minimum assurance per edit type" in page and "any level" in page
    form = {op: "" for op in ("face_swap", "face_reenactment", "face_attribute_edit")}
    form |= {"face_generation": "reviewed", "voice_cloning": "live"}
    saved = admin.post("/portal/assurance", form, form_page="/portal/assurance")
    assert saved.status_code == 302
    api = site.client().get(MINIMUMS, headers=site.auth()).get_json()
    assert api == {"minimums": {"face_generation": "reviewed", "voice_cloning": "live"}}
    [event] = _events(site, "provider.assurance_minimums_changed")[-1:]
    assert event.actor.startswith("staff:")
    shown = admin.get("/portal/assurance")
    assert re.search(r'<option selected value="reviewed">', shown) or (
        'value="reviewed" selected' in shown
    )
    refused = admin.post(
        "/portal/assurance", {"face_swap": "superb"}, form_page="/portal/assurance"
    )
    assert refused.status_code == 400

    viewer = _staff(site, "vic@acme.example", "viewer")
    read = viewer.get("/portal/assurance")
    assert 'data-minimum="reviewed"' in read and "<select" not in read
    token = csrf_token(read)
    posted = viewer.client.post("/portal/assurance", data={"csrf_token": token, "face_swap": ""})
    assert posted.status_code == 403
    assert site.client().get(MINIMUMS, headers=site.auth()).get_json() == api
    site.client().put(MINIMUMS, json={"minimums": {}}, headers=site.auth())


# ---------------------------------------------------------------------------- the person
def _person(site, email: str) -> tuple[Person, int]:
    person = verified_sign_up(Person(site.client()), email, PASSWORD)
    with site.app.app_context():
        s = db.session()
        user = s.exec(select(User).where(User.email == email)).one()
        return person, s.exec(select(Subject).where(Subject.user_id == user.id)).one().id


def _blocked_for(site, subject_id: int) -> str:
    with site.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        job = factories.GateJobFactory(provider_id=_provider_id(site, "Globex"), status="decided")
        factories.FindingFactory(
            job=job,
            outcome="assurance_too_low",
            subject_id=subject_id,
            box=[1, 2, 3, 4],
            assurance="uploaded",
        )
        factories.DecisionFactory(
            job=job,
            decision="needs_consent",
            reasons=["assurance_too_low"],
            assurance_required="live",
        )
        return job.id


def _visible(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_ledger_says_the_edit_was_blocked_for_assurance_in_both_languages(site):
    person, subject_id = _person(site, "amy@example.org")
    job_id = _blocked_for(site, subject_id)
    page = person.get("/activity")
    [row] = re.findall(rf"<tr class=\"blocked\">(?:(?!</tr>).)*{job_id[:12]}.*?</tr>", page, re.S)
    shown = _visible(row)
    assert "blocked: needs consent (you: assurance too low)" in shown
    assert (
        "assurance too low: this provider requires live (checked by machine); yours is "
        "uploaded (photos or files)"
    ) in shown
    assert 'data-outcome="assurance_too_low"' in row
    person.post("/language", {"lang": "zh-CN", "next": "/"}, form_page="/")
    zh = _visible(person.get("/activity"))
    assert "assurance too low" not in zh and "uploaded (photos or files)" not in zh
    assert "保障级别不足" in zh


# ---------------------------------------------------------------------------- uploads
def test_uploads_are_refused_where_the_operator_turned_them_off(site, monkeypatch):
    person, _ = _person(site, "uma@example.org")
    page = person.get("/enroll")
    assert 'action="/enroll/voice"' in page  # on in development
    site.settings.allow_uploaded_enrollment = False
    try:
        page = person.get("/enroll")
        assert 'type="file"' not in page and 'action="/enroll/voice"' not in page
        token = csrf_token(page)
        assert person.client.post("/enroll", data={"csrf_token": token}).status_code == 403
        assert person.client.post("/enroll/voice", data={"csrf_token": token}).status_code == 403
        monkeypatch.setenv("CONSENT_SERVICE_HOME", str(site.settings.home))
        monkeypatch.setenv("BROKER_URL", "memory://")
        monkeypatch.setenv("ALLOW_UPLOADED_ENROLLMENT", "false")
        command = ["subjects", "import", "--email", "imp@example.org", "--face", __file__]
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1 and "ALLOW_UPLOADED_ENROLLMENT" in result.output
        with site.app.app_context():
            assert (
                db.session().exec(select(User).where(User.email == "imp@example.org")).first()
                is None
            )
    finally:
        site.settings.allow_uploaded_enrollment = None
