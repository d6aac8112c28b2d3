"""The people's pages through the real app (SQLite in a temporary home, every POST with its CSRF
token): full-scope grants, one-click revoke, receipts of each version, protect-only mode, the
activity ledger, export and account deletion. Templates and jobs are written with the service
functions and models the worker uses, so no worker runs here."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import numpy as np
import pytest
from sqlmodel import select

from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.audit.models import AuditEvent
from consent_service.audit.service import verify
from consent_service.biometrics.models import GalleryVersion
from consent_service.consent.models import ConsentGrant
from consent_service.providers.models import Provider
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Modality
from tests import factories
from tests.support import Person, pass_step_up, sign_receipts, templates_of, verified_sign_up

PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app()


def _sign_up(site, email: str) -> tuple[Person, int]:
    person = verified_sign_up(Person(site.client()), email, PASSWORD)
    with site.app.app_context():
        s = db.session()
        user = s.exec(select(User).where(User.email == email)).one()
        return person, s.exec(select(Subject).where(Subject.user_id == user.id)).one().id


def _provider_id(site, name: str) -> str:
    with site.app.app_context():
        return db.session().exec(select(Provider).where(Provider.name == name)).one().id


def _add_template(site, subject_id: int, modality: Modality = Modality.FACE) -> None:
    with site.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        factories.BiometricTemplateFactory(
            subject_id=subject_id,
            modality=modality.value,
            model="face_recognition/dlib-resnet-v1",
            sealed=(services().envelope, np.linspace(-0.2, 0.2, 128)),
        )


def _add_job(
    site, subject_id: int, provider: str, decision: str, outcome: str, reasons=None
) -> str:
    """A decided job showing the person (their outcome); its reasons, unless given, theirs."""
    with site.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        job = factories.GateJobFactory(provider_id=_provider_id(site, provider), status="decided")
        factories.FindingFactory(
            job=job, role="target", outcome=outcome, subject_id=subject_id, box=[1, 2, 3, 4]
        )
        factories.DecisionFactory(job=job, decision=decision, reasons=reasons or [outcome])
        return job.id


def _grant_ids(page: str) -> list[str]:
    return re.findall(r"/grants/([0-9a-f]{32})/revoke", page)


def test_full_scope_grant_revoke_and_a_receipt_for_each_version(site):
    person, subject_id = _sign_up(site, "gina@example.org")
    page = person.get("/grants/new?modality=voice")
    # All three voice edit types are offered, face ones are not; nothing is pre-ticked.
    for op in ("voice_cloning", "voice_conversion", "voice_editing"):
        assert f'value="{op}"' in page
    assert 'value="face_swap"' not in page
    assert not [b for b in re.findall(r"<input[^>]*checkbox[^>]*>", page) if "checked" in b]
    # Only the consent box is required: `required` on a group would make browsers demand all.
    required = [b for b in re.findall(r"<input[^>]*checkbox[^>]*>", page) if " required" in b]
    assert len(required) == 1 and 'name="agree"' in required[0]
    for words in ("Who", "What", "Why", "How long", "How to withdraw", "Consequences"):
        assert f"<dt>{words}</dt>" in page
    acme = _provider_id(site, "Acme")
    start = (utcnow() + timedelta(days=2)).date().isoformat()
    scope = {
        "modality": "voice",
        "operations": ["voice_cloning", "voice_editing"],
        "roles": ["source"],
        "provider_scope": "chosen",
        "providers": [acme],
        "purpose": "Audiobook narration in my voice",
        "valid_from": start,
        "valid_until": "2099-12-31",
        "notice_version": "2026-11-1",
    }
    unticked = person.post(
        "/grants/new?modality=voice", scope, form_page="/grants/new?modality=voice"
    )
    assert unticked.status_code == 400
    mixed = person.post(
        "/grants/new?modality=voice",
        {**scope, "operations": ["voice_cloning", "face_swap"], "agree": "y"},
        form_page="/grants/new?modality=voice",
    )
    assert mixed.status_code == 400  # a grant covers one modality
    response = person.post(
        "/grants/new?modality=voice",
        {**scope, "agree": "y"},
        form_page="/grants/new?modality=voice",
    )
    # The grant waits for the person's live check (consent/step_up.py), done here as the
    # worker does once it passed.
    assert "You have granted nothing" in person.get("/")
    pass_step_up(site.app, response)
    dashboard = person.get("/")
    assert "voice: voice cloning, voice editing" in dashboard and "Acme" in dashboard
    assert "Audiobook narration" in dashboard and "2099-12-31" in dashboard
    [grant_id] = _grant_ids(dashboard)
    with site.app.app_context():
        row = db.session().exec(select(ConsentGrant).where(ConsentGrant.grant_id == grant_id)).one()
        assert row.valid_from.date().isoformat() == start and row.provider_ids == [acme]
        assert (row.notice_version, row.language) == ("2026-11-1", "en")

    assert person.post(f"/grants/{grant_id}/revoke", {}, form_page="/").status_code == 302
    assert "revoked (v2)" in person.get("/")

    # The receipts are signed by a worker after the commit; until then there is nothing to
    # download (the page says so, tests/functional/test_receipt_pages.py).
    assert person.client.get(f"/grants/{grant_id}/v1/receipt.json").status_code == 409
    assert sign_receipts(site.app) == 2
    given = json.loads(person.get(f"/grants/{grant_id}/v1/receipt.json"))
    withdrawn = json.loads(person.get(f"/grants/{grant_id}/v2/receipt.json"))
    events = [r["iso27560"]["events"][0]["event_state"] for r in (given, withdrawn)]
    assert events == ["consent given", "consent withdrawn"]
    assert (given["grant"]["status"], withdrawn["grant"]["status"]) == ("active", "revoked")
    assert given["consentReceiptID"] != withdrawn["consentReceiptID"]
    for r in (given, withdrawn):
        assert r["iso27560"]["record_id"] == grant_id
        assert r["piiControllers"][0]["piiController"] and r["piiPrincipalId"]
        assert r["services"][0]["purposes"][0]["purpose"] == "Audiobook narration in my voice"
        assert r["services"][0]["purposes"][0]["piiCategory"] == ["voice template"]
        assert r["sensitive"] is True
        p = r["iso27560"]["purposes"][0]
        assert p["processing_method"]["edit_types"] == ["voice_cloning", "voice_editing"]
        assert p["recipient_third_parties"] == [{"id": acme, "name": "Acme"}]
        notice = r["iso27560"]["privacy_notice"]
        assert notice["version"] == "2026-11-1" and len(notice["sha256"]) == 64
        assert r["iso27560"]["events"][0]["validity_duration"]["until"].startswith("2099-12-31")
        assert "Revoke" in p["withdrawal_method"] and r["collectionMethod"].startswith("web form")
    response = person.client.get(f"/grants/{grant_id}/v1/receipt.json")
    assert "attachment" in response.headers["Content-Disposition"]
    # Another person cannot read these receipts.
    other, _ = _sign_up(site, "hal@example.org")
    assert other.client.get(f"/grants/{grant_id}/v1/receipt.json").status_code == 404


def test_revoke_and_protect_only_need_the_csrf_token(site):
    person, subject_id = _sign_up(site, "ivy@example.org")
    response = person.post(
        "/grants/new?modality=face",
        {
            "operations": ["face_swap"],
            "roles": ["target"],
            "provider_scope": "all",
            "agree": "y",
            "notice_version": "2026-11-1",
        },
        form_page="/grants/new",
    )
    pass_step_up(site.app, response)
    [grant_id] = _grant_ids(person.get("/"))
    person.client.post(f"/grants/{grant_id}/revoke")
    person.client.post("/protect-only", data={"on": "1"})
    page = person.get("/")
    assert "active (v1)" in page and "Switch protect-only on" in page


def test_protect_only_switches_on_and_off_and_is_audited(site):
    person, subject_id = _sign_up(site, "jan@example.org")
    assert person.post("/protect-only", {"on": "1"}, form_page="/").status_code == 302
    assert "Switch protect-only off" in person.get("/")
    with site.app.app_context():
        assert db.session().get(Subject, subject_id).protect_only is True
    assert person.post("/protect-only", {"on": "0"}, form_page="/").status_code == 302
    with site.app.app_context():
        s = db.session()
        assert s.get(Subject, subject_id).protect_only is False
        events = s.exec(
            select(AuditEvent.event_type).where(AuditEvent.subject_id == subject_id)
        ).all()
    assert events == ["subject.protect_only_on", "subject.protect_only_off"]


def test_the_choice_to_destroy_templates_on_withdrawal_is_the_persons_and_audited(site):
    person, subject_id = _sign_up(site, "ret@example.org")
    page = person.get("/")
    assert "Destroy my templates when my last grant is withdrawn" in page
    form = "/destroy-on-withdrawal"
    assert person.post(form, {"on": "1"}, form_page="/").status_code == 302
    assert "Keep my templates" in person.get("/")
    assert person.post(form, {"on": "0"}, form_page="/").status_code == 302
    with site.app.app_context():
        s = db.session()
        assert s.get(Subject, subject_id).destroy_templates_on_withdrawal is False
        events = s.exec(
            select(AuditEvent.event_type).where(AuditEvent.subject_id == subject_id)
        ).all()
    assert events == ["subject.destroy_on_withdrawal_on", "subject.destroy_on_withdrawal_off"]
    refused = person.client.post(form, data={"on": "1"})  # no CSRF token
    assert refused.status_code in (302, 400)
    with site.app.app_context():
        assert db.session().get(Subject, subject_id).destroy_templates_on_withdrawal is False


def test_the_ledger_tells_the_persons_own_reasons_from_someone_elses(site):
    """The person consented; someone else in the same media had not enrolled, so the job needs
    consent: the row says which reason is whose."""
    person, subject_id = _sign_up(site, "ledger.reasons@example.org")
    job = _add_job(site, subject_id, "Acme", "needs_consent", "consented", ["unenrolled"])
    [row] = re.findall(
        rf"<tr class=\"blocked\">(?:(?!</tr>).)*{job[:12]}.*?</tr>", person.get("/activity"), re.S
    )
    shown = " ".join(re.sub(r"<[^>]+>", " ", row).split())
    assert "consented" in shown and "you:" not in shown
    assert "blocked: needs consent (someone else in the same media: not enrolled)" in shown


def test_the_ledger_lists_allowed_and_blocked_jobs_of_this_person_only(site):
    person, subject_id = _sign_up(site, "kim@example.org")
    _, stranger_id = _sign_up(site, "lou@example.org")
    allowed = _add_job(site, subject_id, "Acme", "allow", "consented")
    blocked = _add_job(site, subject_id, "Globex", "deny", "revoked")
    theirs = _add_job(site, stranger_id, "Globex", "deny", "protected")
    page = person.get("/activity")
    assert allowed[:12] in page and blocked[:12] in page and theirs[:12] not in page
    assert "Acme" in page and "Globex" in page and "face swap" in page
    # Words, not DESIGN.md's codes; the codes stay in data attributes for scripts.
    assert "allowed (you: consented)" in page and "blocked: denied (you: consent revoked)" in page
    assert 'data-decision="deny"' in page and ">face_swap<" not in page
    assert "[1, 2, 3, 4]" not in page  # never where the face was, let alone the media


def _visible(html: str) -> str:
    """The text a person reads: tags (and the codes kept in their attributes) removed."""
    return re.sub(r"<[^>]+>", " ", html)


def test_a_chinese_page_names_edits_roles_and_outcomes_in_chinese(site):
    person, subject_id = _sign_up(site, "wei@example.org")
    switched = person.post("/language", {"lang": "zh-CN", "next": "/"}, form_page="/")
    assert switched.status_code == 302
    grant = {
        "modality": "face",
        "operations": ["face_swap", "face_reenactment"],
        "roles": ["target"],
        "provider_scope": "all",
        "notice_version": "2026-11-1",
        "notice_language": "zh-CN",
        "agree": "y",
    }
    response = person.post("/grants/new?modality=face", grant, form_page="/grants/new")
    pass_step_up(site.app, response)
    blocked = _add_job(site, subject_id, "Globex", "deny", "revoked")

    dashboard = person.get("/")
    [row] = re.findall(r"<article [^>]*data-grant=.*?</article>", dashboard, re.S)
    assert "人脸：人脸驱动、换脸" in row and "目标" in _visible(row)
    [recent] = re.findall(r"<li>[^<]*Globex.*?</li>", dashboard, re.S)
    assert "换脸 · 已阻止 (同意已撤回)" in recent

    ledger = person.get("/activity")
    [entry] = re.findall(
        rf"<tr class=\"blocked\">(?:(?!</tr>).)*{blocked[:12]}.*?</tr>", ledger, re.S
    )
    shown = _visible(entry)
    assert "换脸" in shown and "目标" in shown and "已阻止：拒绝 (您：同意已撤回)" in shown
    for code in ("face_swap", "face_reenactment", "target", "revoked", "deny"):
        assert code not in _visible(row) + _visible(recent) + shown, code
    # Scripts still find the codes.
    assert 'data-outcome="revoked"' in entry and 'data-decision="deny"' in entry
    children = person.get("/children")  # the guardian's choices are words of this page too
    assert "父母" in children and "法定监护人" in children and "Legal guardian" not in children


def test_the_ledger_pages(site, monkeypatch):
    from consent_service.rights import views

    person, subject_id = _sign_up(site, "pia@example.org")
    jobs = [_add_job(site, subject_id, "Acme", "allow", "consented") for _ in range(3)]
    monkeypatch.setattr(views, "LEDGER_PAGE", 2)
    first, second = person.get("/activity"), person.get("/activity?page=2")
    assert sum(j[:12] in first for j in jobs) == 2 and "page=2" in first
    assert sum(j[:12] in second for j in jobs) == 1 and "page=3" not in second


def test_export_has_everything_but_biometrics(site):
    person, subject_id = _sign_up(site, "max@example.org")
    pass_step_up(
        site.app,
        person.post(
            "/grants/new",
            {
                "operations": ["face_swap"],
                "roles": ["source"],
                "provider_scope": "all",
                "agree": "y",
                "notice_version": "2026-11-1",
            },
        ),
    )
    [grant_id] = _grant_ids(person.get("/"))
    person.post(f"/grants/{grant_id}/revoke", {}, form_page="/")
    _add_template(site, subject_id)
    job = _add_job(site, subject_id, "Acme", "deny", "revoked")
    response = person.client.get("/account/export.json")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    data = response.get_json()
    assert data["account"]["email"] == "max@example.org"
    assert [(g["grant_id"], g["version"], g["status"]) for g in data["grants"]] == [
        (grant_id, 1, "active"),
        (grant_id, 2, "revoked"),
    ]
    # Signed or not yet, each version's receipt is there (here: not yet, no worker runs).
    states = [r["receipt"]["iso27560"]["events"][0]["event_state"] for r in data["receipts"]]
    assert states == ["consent given", "consent withdrawn"]
    assert [r["jws"] for r in data["receipts"]] == [None, None]
    assert [e["job_id"] for e in data["ledger"]] == [job]
    assert [t["modality"] for t in data["templates"]] == ["face"]
    raw = response.get_data(as_text=True)
    for secret in ("ciphertext", "wrapped_key", "embedding", "password_hash", "$argon2"):
        assert secret not in raw


def test_delete_account(site):
    person, subject_id = _sign_up(site, "ned@example.org")
    pass_step_up(
        site.app,
        person.post(
            "/grants/new",
            {
                "operations": ["face_swap", "face_generation"],
                "roles": ["source", "target"],
                "provider_scope": "all",
                "agree": "y",
                "notice_version": "2026-11-1",
            },
        ),
    )
    _add_template(site, subject_id)
    _add_template(site, subject_id)
    with site.app.app_context():
        gallery_before = db.session().get(GalleryVersion, "face").version

    wrong = person.post("/account/delete", {"password": "not my password"})
    assert wrong.status_code == 400 and "not correct" in wrong.get_data(as_text=True)
    assert "face swap" in person.get("/")  # nothing happened

    stolen = site.client()
    stolen.set_cookie("session", person.client.get_cookie("session").value)
    response = person.post("/account/delete", {"password": PASSWORD})
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")

    with site.app.app_context():
        s = db.session()
        assert templates_of(s, subject_id) == []
        assert s.get(GalleryVersion, "face").version > gallery_before
        grants = s.exec(select(ConsentGrant).where(ConsentGrant.subject_id == subject_id)).all()
        assert sorted((g.version, g.status) for g in grants) == [(1, "active"), (2, "revoked")]
        user = s.exec(select(User).join(Subject).where(Subject.id == subject_id)).one()
        assert user.email != "ned@example.org" and not user.is_active
        tombstone = s.exec(
            select(AuditEvent).where(AuditEvent.event_type == "account.deleted")
        ).one()
        assert tombstone.subject_id == subject_id
        assert tombstone.payload["templates_destroyed"] == 2
        assert "ned@example.org" not in json.dumps(tombstone.payload)
        assert verify(s, services().audit_key).ok

    assert stolen.get("/").status_code == 302  # every session of the account ended
    again = Person(site.client())
    refused = again.post("/login", {"email": "ned@example.org", "password": PASSWORD})
    assert refused.status_code == 200 and "Wrong e-mail address or password" in refused.get_data(
        as_text=True
    )
    # The address is free again: a new account starts from nothing.
    new, new_subject = _sign_up(site, "ned@example.org")
    assert new_subject != subject_id and "You have granted nothing" in new.get("/")


def test_an_operator_exports_the_same_data_from_the_cli(site, monkeypatch):
    from click.testing import CliRunner

    from consent_service.cli import main

    person, subject_id = _sign_up(site, "ola@example.org")
    job = _add_job(site, subject_id, "Acme", "allow", "consented")
    monkeypatch.setenv("CONSENT_SERVICE_HOME", str(site.settings.home))
    monkeypatch.setenv("BROKER_URL", "memory://")
    result = CliRunner().invoke(main, ["subjects", "export", "ola@example.org"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["account"]["email"] == "ola@example.org"
    assert [e["job_id"] for e in data["ledger"]] == [job]
    missing = CliRunner().invoke(main, ["subjects", "export", "nobody@example.org"])
    assert missing.exit_code == 1 and "no account" in missing.output


def test_every_page_links_the_sites_own_assets_and_the_favicon_answers(site):
    client = site.client()
    page = client.get("/login").get_data(as_text=True)
    # Bootstrap from the package itself (no CDN), the icon, the skip link to the content.
    assert 'href="/bootstrap/static/css/bootstrap.min.css"' in page and "https://" not in page
    css = client.get("/bootstrap/static/css/bootstrap.min.css")
    css.close()  # a file sent by send_file
    assert css.status_code == 200
    assert '<link rel="icon" href="/static/favicon.svg"' in page
    assert 'href="#main"' in page and '<main id="main"' in page
    icon = client.get("/favicon.ico", follow_redirects=True)
    icon.close()
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"


def test_with_no_provider_registered_the_grant_form_offers_all_providers(make_api_app):
    site = make_api_app()
    with site.app.app_context(), db.unit_of_work() as s:
        for provider in s.exec(select(Provider)):
            provider.status = "suspended"  # none active: none to choose
    person, _ = _sign_up(site, "early@example.org")
    page = person.get("/grants/new")
    assert "No providers are registered yet." in page
    [checked] = re.findall(r'<input[^>]*name="provider_scope"[^>]*>', page)[1:]
    assert 'value="all"' in checked and "checked" in checked


def test_a_job_showing_the_person_twice_is_one_row_with_both_roles(site):
    person, subject_id = _sign_up(site, "twice@example.org")
    with site.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        job = factories.GateJobFactory(provider_id=_provider_id(site, "Acme"), status="decided")
        for role in ("source", "target", "target"):
            factories.FindingFactory(
                job=job, role=role, outcome="consented", subject_id=subject_id, box=[1, 2, 3, 4]
            )
        factories.DecisionFactory(job=job, decision="allow", reasons=["all_consented"])
        job_id = job.id
    page = person.get("/activity")
    assert page.count(job_id[:12]) == 1
    [row] = re.findall(rf"<tr class=\"allowed\">(?:(?!</tr>).)*{job_id[:12]}.*?</tr>", page, re.S)
    assert "source, target" in row
    export = person.client.get("/account/export.json").get_json()
    [entry] = [e for e in export["ledger"] if e["job_id"] == job_id]
    assert entry["roles"] == ["source", "target"]
