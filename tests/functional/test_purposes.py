"""Purposes and refusals end to end (issue 13): the vocabulary a provider reads, a job that
states its purpose, a grant for some purposes that leaves another `not_covered` (the finding and
the person's ledger name the purpose), and a refusal of a provider that beats a grant to every
provider until it is withdrawn. Jobs are decided by the real recording step with the analysis
given (no worker runs here)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from sqlmodel import select
from urllib3 import encode_multipart_formdata

from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.audit.models import AuditEvent
from consent_service.cli import main
from consent_service.consent import service as consent
from consent_service.consent.models import ConsentGrant
from consent_service.gate import pipeline
from consent_service.gate.decisions import Analysis, PersonSeen, Signing
from consent_service.providers.models import Provider
from consent_service.runtime import services
from consent_service.tokens.service import verify_token
from consent_service.vocabulary import Operation, Role
from tests.support import GRANT_FORM, Person, pass_step_up, verified_sign_up

PASSWORD = "a long enough password"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app()


def submit(site, **fields):
    body, content_type = encode_multipart_formdata(
        [("operation", "face_swap"), *fields.items(), ("source", ("me.jpg", b"not decoded"))]
    )
    return site.client().post(
        "/api/v1/jobs", data=body, content_type=content_type, headers=site.auth()
    )


def decide(site, job_id: str, subject_id: int) -> dict:
    """Record the job's decision as the worker's last step does, the person found as source;
    returns the job as the provider reads it."""
    with site.app.app_context():
        svc = services()
        seen = Analysis(people=[PersonSeen(0, Role.SOURCE, (1, 2, 3, 4), subject_id, False)])
        with db.unit_of_work() as s:
            pipeline.record(
                s,
                job_id,
                seen,
                Signing(svc.audit_key, svc.decision_signer, svc.pseudonyms),
                svc.media_store,
            )
    return site.client().get(f"/api/v1/jobs/{job_id}", headers=site.auth()).get_json()


def sign_up(site, email: str) -> tuple[Person, int]:
    person = verified_sign_up(Person(site.client()), email, PASSWORD)
    with site.app.app_context():
        s = db.session()
        user = s.exec(select(User).where(User.email == email)).one()
        return person, s.exec(select(Subject).where(Subject.user_id == user.id)).one().id


def test_the_vocabulary_is_public_and_jobs_must_name_a_purpose_in_force(site):
    listed = site.client().get("/api/v1/purposes")
    assert listed.status_code == 200
    codes = [p["code"] for p in listed.get_json()["purposes"]]
    assert codes == sorted(
        [
            "accessibility",
            "advertising",
            "education",
            "entertainment",
            "film_production",
            "news",
            "research",
        ]
    )
    advertising = next(p for p in listed.get_json()["purposes"] if p["code"] == "advertising")
    assert advertising["label_zh"] == "广告与营销"

    job = submit(site, purpose="advertising", purpose_detail="A cola advert, 30 s")
    assert job.status_code == 202
    body = job.get_json()
    assert (body["purpose"], body["purpose_detail"]) == ("advertising", "A cola advert, 30 s")
    without = submit(site).get_json()
    assert without["purpose"] is None and without["purpose_detail"] is None

    unknown = submit(site, purpose="world_domination")
    assert unknown.status_code == 422 and unknown.mimetype == PROBLEM
    assert "world_domination" in unknown.get_json()["detail"]

    env = {"CONSENT_SERVICE_HOME": str(site.settings.home), "BROKER_URL": "memory://"}
    cli = CliRunner()
    added = cli.invoke(
        main, ["purposes", "add", "satire", "--label-en", "Satire", "--label-zh", "讽刺"], env=env
    )
    assert added.exit_code == 0, added.output
    assert submit(site, purpose="satire").status_code == 202
    assert cli.invoke(main, ["purposes", "retire", "satire"], env=env).exit_code == 0
    retired = submit(site, purpose="satire")
    assert retired.status_code == 422 and "satire" in retired.get_json()["detail"]
    listing = cli.invoke(main, ["purposes", "list", "--all"], env=env).output
    assert re.search(r"^satire\tretired\tSatire\t讽刺$", listing, re.M)
    assert "satire" not in cli.invoke(main, ["purposes", "list"], env=env).output
    with site.app.app_context():
        events = db.session().exec(select(AuditEvent.event_type)).all()
        assert {"purpose.added", "purpose.retired"} <= set(events)


def test_a_grant_for_other_purposes_leaves_the_job_not_covered_and_says_why(site):
    person, subject_id = sign_up(site, "ines@example.org")
    form = person.get("/grants/new")
    # The vocabulary is offered as a group, every purpose chosen unless the person narrows it.
    assert "<legend>For which purposes</legend>" in form and 'value="advertising"' in form
    assert re.search(r'<input[^>]*checked[^>]*value="all"|value="all"[^>]*checked', form)
    narrowed = {**GRANT_FORM, "roles": ["source"], "purpose_scope": "chosen"}
    empty = person.post("/grants/new", narrowed)
    assert empty.status_code == 400  # "only the purposes I choose" with none chosen
    response = person.post("/grants/new", {**narrowed, "purposes": ["education", "research"]})
    granted = pass_step_up(site.app, response)
    dashboard = person.get("/")
    assert "Education and training, Research and model testing" in dashboard
    with site.app.app_context():
        row = (
            db.session()
            .exec(select(ConsentGrant).where(ConsentGrant.grant_id == granted["grant_id"]))
            .one()
        )
        assert row.purposes == ["education", "research"]

    education = decide(site, submit(site, purpose="education").get_json()["id"], subject_id)
    assert education["decision"] == "allow"
    advert_id = submit(site, purpose="advertising", purpose_detail="A cola advert").get_json()["id"]
    advert = decide(site, advert_id, subject_id)
    assert (advert["decision"], advert["reasons"]) == ("needs_consent", ["not_covered"])
    [finding] = advert["findings"]
    assert finding["outcome"] == "not_covered" and finding["uncovered_purpose"] == "advertising"
    # A job that states no purpose is covered only by grants for every purpose.
    bare = decide(site, submit(site).get_json()["id"], subject_id)
    assert bare["reasons"] == ["not_covered"]
    assert bare["findings"][0]["uncovered_purpose"] is None

    # The token says which purpose the grants were checked for.
    with site.app.app_context():
        claims, _ = verify_token(
            advert["token"],
            services().decision_keys.public_keys(),
            issuer=services().settings.decision_token_issuer,
        )
    assert claims["purpose"] == "advertising"

    ledger = person.get("/activity")
    assert re.search(
        r'<span class="uncovered-purpose">not covered by a grant: purpose Advertising and '
        "marketing</span>",
        ledger,
    )
    assert "A cola advert" in ledger and "for Education and training" in ledger


def test_a_refusal_beats_a_grant_to_every_provider_until_withdrawn(site):
    person, subject_id = sign_up(site, "jun@example.org")
    pass_step_up(site.app, person.post("/grants/new", {**GRANT_FORM, "roles": ["source"]}))
    assert decide(site, submit(site).get_json()["id"], subject_id)["decision"] == "allow"

    with site.app.app_context():
        acme = db.session().exec(select(Provider).where(Provider.name == "Acme")).one().id
    page = person.get("/refusals/new?modality=face")
    assert "Refuse a provider" in page and f'value="{acme}"' in page
    refused = person.post("/refusals/new?modality=face", {"provider": acme})
    assert refused.status_code == 302  # no live check: a refusal only denies
    dashboard = person.get("/")
    assert "Refusal" in dashboard and "refused (v1)" in dashboard
    denied = decide(site, submit(site, purpose="entertainment").get_json()["id"], subject_id)
    assert (denied["decision"], denied["reasons"]) == ("deny", ["refused"])

    [refusal_id] = re.findall(
        r'data-grant="([0-9a-f]{32})"(?:(?!data-grant).)*Withdraw refusal', dashboard, re.S
    )
    assert person.post(f"/grants/{refusal_id}/revoke", {}, form_page="/").status_code == 302
    assert "withdrawn (v2)" in person.get("/")
    again = decide(site, submit(site).get_json()["id"], subject_id)
    assert again["decision"] == "allow"  # the grant decides again; no `revoked`
    with site.app.app_context():
        s = db.session()
        events = s.exec(select(AuditEvent.event_type).where(AuditEvent.subject_id == subject_id))
        assert {"consent.refused", "consent.refusal_withdrawn"} <= set(events)
        versions = consent.grant_versions(s, subject_id)
        refusal = [g for g in versions if g.grant_id == refusal_id]
        assert [(g.status, g.refusal) for g in refusal] == [("refused", True), ("revoked", True)]
        assert refusal[0].operations == sorted(
            op.value for op in Operation if op.value.startswith("face_")
        )
