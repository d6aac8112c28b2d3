"""The provider portal through the real app (SQLite in a temporary home, every POST with its CSRF
token): staff see and change their own provider only, keys are shown once and stored as hashes,
a revoked key is refused by the API, the webhook and its deliveries, job filters, usage."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlmodel import select

from consent_service import db
from consent_service.accounts.models import Subject
from consent_service.audit.models import AuditEvent
from consent_service.cli import main
from consent_service.portal.service import add_staff
from consent_service.providers.models import ApiKey, Provider
from consent_service.runtime import services
from consent_service.timeutil import as_utc, utcnow
from consent_service.webhooks import service as webhooks
from tests import factories
from tests.support import (
    Person,
    accept_invitation,
    csrf_token,
    invitation_path,
    mailed_link,
    set_up_two_factor,
    sign_in,
    verified_sign_up,
)

PASSWORD = "a long enough password"
RAW_KEY = re.compile(r"cs_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app()


def _provider(site, name: str) -> Provider:
    with site.app.app_context():
        return db.session().exec(select(Provider).where(Provider.name == name)).one()


def _staff(site, provider: str, email: str, role: str = "admin") -> Person:
    with site.app.app_context(), db.unit_of_work() as s:
        found = s.exec(select(Provider).where(Provider.name == provider)).one()
        invitation = add_staff(s, services().audit_key, found, email, role).invitation
    person = Person(site.client())
    accept_invitation(person, invitation_path(site.app, invitation), PASSWORD)
    return _signed_in(person, email)


def _signed_in(person: Person, email: str, password: str = PASSWORD) -> Person:
    """Signed in, and (staff's first sign-in) sent to set up the second factor first."""
    response = sign_in(person, email, password, "/portal/")
    assert response.status_code == 302 and response.headers["Location"] == "/portal/"
    first = person.client.get("/portal/")
    assert first.status_code == 302 and first.headers["Location"].startswith("/account/two-factor")
    set_up_two_factor(person)
    return person


def _job(site, provider: str, decision: str | None, *, days_ago: int = 0, **kw) -> str:
    with site.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        job = factories.GateJobFactory(
            provider=s.exec(select(Provider).where(Provider.name == provider)).one(),
            operation=kw.get("operation", "face_swap"),
            status=kw.get("status", "decided" if decision else "queued"),
            created_at=utcnow() - timedelta(days=days_ago),
        )
        if decision:
            # A reason the decision could have (the job's answer lists `Reason` codes only).
            reasons = {"allow": ["all_consented"], "deny": ["refused"]}.get(
                decision, ["unenrolled"]
            )
            factories.DecisionFactory(job=job, decision=decision, reasons=reasons)
        return job.id


def _globex_delivery(site) -> str:
    """Globex has a webhook and one delivery in its log."""
    with site.app.app_context(), db.unit_of_work() as s:
        globex = s.exec(select(Provider).where(Provider.name == "Globex")).one()
        webhooks.configure(
            s, services().envelope, globex, "http://127.0.0.1:9/globex-hook", allow_private=True
        )
        delivery = webhooks.enqueue(s, globex.id, webhooks.JOB_DECIDED, {"job_id": "x"})
        return delivery.id


def _api_status(site, key: str, job_id: str = "0" * 32) -> int:
    return site.client().get(f"/api/v1/jobs/{job_id}", headers=site.auth(key)).status_code


def test_staff_of_one_provider_cannot_see_or_act_on_anothers(site):
    acme = _staff(site, "Acme", "ada@acme.example")
    globex_job = _job(site, "Globex", "allow")
    acme_job = _job(site, "Acme", "deny")
    globex_delivery = _globex_delivery(site)
    with site.app.app_context():
        globex_prefix = (
            db.session()
            .exec(select(ApiKey.prefix).where(ApiKey.provider_id == _provider(site, "Globex").id))
            .first()
        )

    # Another provider's ids are as unknown as missing ones: 404, for reading and for acting.
    assert acme.client.get(f"/portal/jobs/{globex_job}").status_code == 404
    assert acme.client.get(f"/portal/jobs/{acme_job}").status_code == 200
    assert acme.client.get(f"/portal/webhook/deliveries/{globex_delivery}").status_code == 404
    revoke = acme.post(f"/portal/keys/{globex_prefix}/revoke", {}, form_page="/portal/keys")
    assert revoke.status_code == 404
    assert _api_status(site, site.other_key) == 404  # Globex's key still works (job not found)

    # Nor does any list show Globex's data.
    jobs = acme.get("/portal/jobs")
    assert acme_job in jobs and globex_job not in jobs
    assert globex_prefix not in acme.get("/portal/keys")
    webhook = acme.get("/portal/webhook")
    assert "globex-hook" not in webhook and globex_delivery not in webhook
    assert "Globex" not in acme.get("/portal/")

    # Globex's own staff see theirs.
    globex = _staff(site, "Globex", "gus@globex.example")
    assert globex.client.get(f"/portal/jobs/{globex_job}").status_code == 200
    assert globex.client.get(f"/portal/jobs/{acme_job}").status_code == 404
    assert globex_delivery in globex.get("/portal/webhook")
    assert globex.client.get(f"/portal/webhook/deliveries/{globex_delivery}").status_code == 200


def test_only_signed_in_staff_reach_the_portal(site):
    assert site.client().get("/portal/").status_code == 302  # to /login
    person = Person(site.client())
    verified_sign_up(person, "pat@example.org", PASSWORD)  # a person, signed in, not staff
    for path in ("/portal/", "/portal/keys", "/portal/jobs", "/portal/webhook"):
        assert person.client.get(path).status_code == 403


def test_a_new_key_is_shown_once_stored_as_a_hash_and_revocable(site):
    acme = _staff(site, "Acme", "bea@acme.example")
    created = acme.post("/portal/keys", {"name": "render farm eu-1", "scopes": ["jobs:read"]})
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    [raw] = RAW_KEY.findall(created.get_data(as_text=True))
    prefix = raw.split("_")[1]

    listing = acme.get("/portal/keys")
    assert raw not in listing  # shown once
    assert f"cs_{prefix}_" in listing and "render farm eu-1" in listing
    with site.app.app_context():
        s = db.session()
        key = s.exec(select(ApiKey).where(ApiKey.prefix == prefix)).one()
        assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
        assert raw not in repr(key.model_dump())  # only the hash is kept
        issued = s.exec(select(AuditEvent).where(AuditEvent.event_type == "provider.key_issued"))
        assert prefix in [e.payload["prefix"] for e in issued]

    assert _api_status(site, raw) == 404  # a working key: the job is just not there
    # Revoking needs the form's CSRF token.
    assert acme.client.post(f"/portal/keys/{prefix}/revoke").status_code == 400
    assert _api_status(site, raw) == 404
    revoked = acme.post(f"/portal/keys/{prefix}/revoke", {}, form_page="/portal/keys")
    assert revoked.status_code == 302
    assert _api_status(site, raw) == 401
    listing = acme.get("/portal/keys")
    assert f"/portal/keys/{prefix}/revoke" not in listing  # no button for a revoked key
    assert _api_status(site, site.key) == 404  # Acme's other key is untouched


def test_keys_are_created_with_scopes_and_expiry_and_rotated_with_an_overlap(site):
    acme = _staff(site, "Acme", "rio@acme.example")
    page = acme.get("/portal/keys")
    assert "jobs:write" in page and "webhooks:admin" in page and "Expires after" in page
    refused = acme.post("/portal/keys", {"name": "nothing"}, form_page="/portal/keys")
    assert refused.status_code == 400 and "Choose at least one scope." in refused.get_data(
        as_text=True
    )
    created = acme.post(
        "/portal/keys",
        {"name": "results reader", "scopes": ["jobs:read"], "expires_in_days": "7"},
    )
    assert created.status_code == 201
    [raw] = RAW_KEY.findall(created.get_data(as_text=True))
    prefix = raw.split("_")[1]
    assert _api_status(site, raw) == 404  # allowed jobs:read
    webhook = site.client().get("/api/v1/webhook", headers=site.auth(raw))
    assert webhook.status_code == 403 and webhook.get_json()["required_scope"] == "webhooks:admin"
    with site.app.app_context():
        key = db.session().exec(select(ApiKey).where(ApiKey.prefix == prefix)).one()
        assert key.scopes == ["jobs:read"]
        assert timedelta(days=6, hours=23) < as_utc(key.expires_at) - utcnow() <= timedelta(days=7)

    # Rotation: a successor shown once, with the same scopes; the old key works for the overlap.
    rotated = acme.post(f"/portal/keys/{prefix}/rotate", {"overlap": "1"}, form_page="/portal/keys")
    assert rotated.status_code == 201 and rotated.headers["Cache-Control"] == "no-store"
    text = rotated.get_data(as_text=True)
    [successor] = RAW_KEY.findall(text)
    assert f"cs_{prefix}_… is rotated" in text
    assert _api_status(site, raw) == 404 and _api_status(site, successor) == 404
    with site.app.app_context():
        s = db.session()
        old = s.exec(select(ApiKey).where(ApiKey.prefix == prefix)).one()
        assert as_utc(old.expires_at) - utcnow() <= timedelta(hours=1)
        new = s.exec(select(ApiKey).where(ApiKey.prefix == successor.split("_")[1])).one()
        assert new.scopes == ["jobs:read"] and new.name == "results reader"
        events = s.exec(select(AuditEvent).where(AuditEvent.event_type == "provider.key_rotated"))
        assert prefix in [e.payload["prefix"] for e in events]
    # An overlap not offered is refused; a rotation with none stops the old key now.
    odd = acme.post(f"/portal/keys/{prefix}/rotate", {"overlap": "5"}, form_page="/portal/keys")
    assert odd.status_code == 400
    now = acme.post(f"/portal/keys/{prefix}/rotate", {"overlap": "0"}, form_page="/portal/keys")
    assert now.status_code == 201 and _api_status(site, raw) == 401
    listing = acme.get("/portal/keys")
    assert f'data-prefix="{prefix}" data-state="expired"' in listing
    assert f"/portal/keys/{prefix}/rotate" not in listing  # an expired key has no actions
    again = acme.post(f"/portal/keys/{prefix}/rotate", {"overlap": "1"}, form_page="/portal/keys")
    assert again.status_code == 302
    assert "cannot be rotated" in acme.get("/portal/keys")


def test_viewers_read_but_change_nothing(site):
    viewer = _staff(site, "Acme", "vic@acme.example", role="viewer")
    keys = viewer.get("/portal/keys")
    assert "Create key" not in keys and "/revoke" not in keys
    token = csrf_token(viewer.get("/portal/webhook"))
    assert (
        viewer.client.post("/portal/keys", data={"name": "x", "csrf_token": token}).status_code
        == 403
    )
    hook = {"url": "http://127.0.0.1:9/x", "events": ["job.decided"], "csrf_token": token}
    assert viewer.client.post("/portal/webhook", data=hook).status_code == 403
    with site.app.app_context():
        prefix = db.session().exec(select(ApiKey.prefix)).first()
    revoke = viewer.client.post(f"/portal/keys/{prefix}/revoke", data={"csrf_token": token})
    assert revoke.status_code == 403
    rotate = viewer.client.post(
        f"/portal/keys/{prefix}/rotate", data={"overlap": "24", "csrf_token": token}
    )
    assert rotate.status_code == 403 and "/rotate" not in keys


def test_webhook_settings_show_the_secret_once_and_the_delivery_log(site):
    acme = _staff(site, "Acme", "cy@acme.example")
    bad = acme.post("/portal/webhook", {"url": "ftp://example.org/x", "events": ["job.decided"]})
    assert bad.status_code == 400
    created = acme.post(
        "/portal/webhook",
        {"url": "http://127.0.0.1:9/acme-hook", "events": ["job.decided"], "active": "y"},
    )
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    [secret] = re.findall(r"whsec_[A-Za-z0-9_-]+", created.get_data(as_text=True))
    page = acme.get("/portal/webhook")
    assert secret not in page and "http://127.0.0.1:9/acme-hook" in page
    with site.app.app_context():
        acme_provider = _provider(site, "Acme")
        hook = webhooks.get_webhook(db.session(), acme_provider)
        assert hook.events == ["job.decided"] and hook.active
        assert webhooks.webhook_secret(services().envelope, hook) == secret

    # Saving again keeps the secret; rotating shows a new one.
    kept = acme.post(
        "/portal/webhook",
        {"url": "http://127.0.0.1:9/acme-hook2", "events": ["job.decided", "consent.revoked"]},
        form_page="/portal/webhook",
    )
    assert kept.status_code == 302
    rotated = acme.post(
        "/portal/webhook",
        {"url": "http://127.0.0.1:9/acme-hook2", "events": ["job.decided"], "rotate_secret": "y"},
    )
    [new_secret] = re.findall(r"whsec_[A-Za-z0-9_-]+", rotated.get_data(as_text=True))
    assert new_secret != secret
    with site.app.app_context():
        hook = webhooks.get_webhook(db.session(), acme_provider)
        assert hook.url.endswith("/acme-hook2") and not hook.active  # the box was left unticked

    # The log: a delivery of Acme's, with its detail page (the exact body sent).
    job_id = _job(site, "Acme", "allow")
    with site.app.app_context(), db.unit_of_work() as s:
        hook = webhooks.get_webhook(s, acme_provider)
        hook.active = True
        s.add(hook)
        s.flush()
        delivery = webhooks.enqueue(s, acme_provider.id, webhooks.JOB_DECIDED, {"job_id": job_id})
        delivery.attempts, delivery.last_status_code = 1, 503
    log = acme.get("/portal/webhook")
    assert delivery.id in log and "HTTP 503" in log
    detail = acme.get(f"/portal/webhook/deliveries/{delivery.id}")
    assert job_id in detail and "job.decided" in detail


def test_job_filters_pages_and_the_detail_the_api_shows(make_api_app):
    site = make_api_app()  # a provider of its own: exact counts
    acme = _staff(site, "Acme", "dee@acme.example")
    allowed = _job(site, "Acme", "allow")
    denied = _job(site, "Acme", "deny", days_ago=3, operation="voice_cloning")
    queued = _job(site, "Acme", None, days_ago=10)
    older = [_job(site, "Acme", "needs_consent", days_ago=40) for _ in range(50)]

    def ids(query: str = "") -> list[str]:
        page = acme.get(f"/portal/jobs{query}")
        return re.findall(r"/portal/jobs/([0-9a-f]{32})", page)

    assert ids("?decision=allow") == [allowed]
    assert ids("?decision=deny&operation=voice_cloning") == [denied]
    assert ids("?status=queued") == [queued]
    day = (utcnow() - timedelta(days=3)).date().isoformat()
    assert ids(f"?created_from={day}&created_to={day}") == [denied]
    assert ids(f"?created_from={day}") == [allowed, denied]
    first = acme.get("/portal/jobs")
    assert "53 jobs; page 1 of 2" in first
    assert ids() == [allowed, denied, queued, *ids()[3:]] and len(ids()) == 50
    second = ids("?page=2")
    assert len(second) == 3 and set(ids()[3:] + second) == set(older)
    assert 'href="/portal/jobs?page=2&amp;operation=face_swap"' in acme.get(
        "/portal/jobs?operation=face_swap"
    )
    bad = acme.client.get("/portal/jobs?decision=maybe")
    assert bad.status_code == 400

    # The detail page shows what GET /api/v1/jobs/<id> answers.
    with site.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        subject = s.exec(select(Subject)).first()  # dee's own account's subject
        factories.FindingFactory(
            job_id=allowed, role="target", subject_id=subject.id, box=[10, 20, 30, 40]
        )
    api = site.client().get(f"/api/v1/jobs/{allowed}", headers=site.auth()).get_json()
    detail = acme.get(f"/portal/jobs/{allowed}")
    assert api["findings"][0]["subject_ref"] in detail
    assert api["decision"] == "allow" and "consented" in detail and "10, 20, 30, 40" in detail
    assert subject.public_id not in detail  # only the per-provider pseudonym


def test_usage_counts_jobs_per_day_and_decision(make_api_app):
    site = make_api_app()
    acme = _staff(site, "Acme", "eve@acme.example")
    for decision in ("allow", "allow", "needs_consent", None):
        _job(site, "Acme", decision)
    _job(site, "Acme", "deny", days_ago=1)
    _job(site, "Acme", "allow", days_ago=45)  # older than 30 days
    _job(site, "Globex", "allow")
    page = acme.get("/portal/")
    today = utcnow().date().isoformat()
    yesterday = (utcnow() - timedelta(days=1)).date().isoformat()
    # Columns: allow, deny, needs_consent, undecided, total.
    assert f"<tr><td>{today}</td><td>2</td><td>0</td><td>1</td><td>1</td><td>4</td></tr>" in page
    assert (
        f"<tr><td>{yesterday}</td><td>0</td><td>1</td><td>0</td><td>0</td><td>1</td></tr>" in page
    )
    assert page.count("<tr><td>") == 30


def test_staff_accounts_come_from_the_cli(site, monkeypatch):
    monkeypatch.setenv("CONSENT_SERVICE_HOME", str(site.settings.home))
    monkeypatch.setenv("BROKER_URL", "memory://")
    result = CliRunner().invoke(main, ["providers", "add-staff", "Globex", "fay@globex.example"])
    assert result.exit_code == 0, result.output
    assert "invited" in result.output and "password" not in result.output
    globex = Person(site.client())
    link = mailed_link(globex.client, "fay@globex.example", "/invitation/")
    accept_invitation(globex, link, "fay's own password")  # she chooses it; nobody else knows it
    globex = _signed_in(globex, "fay@globex.example", "fay's own password")
    assert "Globex" in globex.get("/portal/") and "admin" in globex.get("/portal/")

    again = CliRunner().invoke(
        main, ["providers", "add-staff", "Globex", "fay@globex.example", "--role", "viewer"]
    )
    assert again.exit_code == 0 and "password" not in again.output  # an existing account
    assert "Create key" not in globex.get("/portal/keys")
    elsewhere = CliRunner().invoke(main, ["providers", "add-staff", "Acme", "fay@globex.example"])
    assert elsewhere.exit_code == 1 and "already staff of another provider" in elsewhere.output
    missing = CliRunner().invoke(main, ["providers", "add-staff", "Nope", "x@example.org"])
    assert missing.exit_code == 1 and "No provider named" in missing.output


def test_portal_pages_carry_the_security_headers_and_need_csrf(site):
    acme = _staff(site, "Acme", "gil@acme.example")
    response = acme.client.get("/portal/keys")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    # Scripts only from files the CSP allows ('self'): Bootstrap's and the confirmations'.
    assert not re.search(r"<script(?![^>]*\bsrc=)", response.get_data(as_text=True))
    assert acme.client.post("/portal/keys", data={"name": "no token"}).status_code == 400
    with site.app.app_context():
        names = db.session().exec(select(ApiKey.name)).all()
    assert "no token" not in names


def test_consent_requests_page_lists_only_the_providers_own(site):
    def request_for(provider: str, email: str) -> str:
        with site.app.app_context(), db.unit_of_work() as s, factories.bound(s):
            return factories.ConsentRequestFactory(
                provider_id=_provider(site, provider).id, email=email
            ).id

    request_for("Acme", "asked-by-acme@example.org")
    request_for("Globex", "asked-by-globex@example.org")
    staff = _staff(site, "Acme", "rena@acme.example", role="viewer")
    page = staff.get("/portal/requests")
    assert "asked-by-acme@example.org" in page and "pending" in page
    assert "asked-by-globex@example.org" not in page


def test_staff_land_in_their_portal_and_people_on_their_dashboard(site):
    with site.app.app_context(), db.unit_of_work() as s:
        found = s.exec(select(Provider).where(Provider.name == "Acme")).one()
        invitation = add_staff(s, services().audit_key, found, "lands@example.org", "viewer")
    staff = Person(site.client())
    accept_invitation(staff, invitation_path(site.app, invitation.invitation), PASSWORD)
    response = sign_in(staff, "lands@example.org", PASSWORD)  # no ?next=
    assert response.status_code == 302 and response.headers["Location"] == "/portal/"
    # Every page's header links staff to the portal, and only staff.
    assert 'href="/portal/"' in staff.get("/")
    person = verified_sign_up(Person(site.client()), "walks@example.org", PASSWORD)
    assert 'href="/portal/"' not in person.get("/")
    assert sign_in(person, "walks@example.org", PASSWORD).headers["Location"] == "/"
