"""Complaints through the real app: the public form (no account; a signed-in person prefilled),
its clear refusals, the status page behind the mailed link, the operators' queue and actions
(operators only, each audited, the evidence view audited), and the provider's API (its own
complaints only, documented in the OpenAPI document)."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlmodel import select

from consent_service import db
from consent_service.audit.models import AuditEvent
from consent_service.cli import main
from consent_service.cli_support import AppLoader
from consent_service.complaints.models import Complaint
from consent_service.mail import read_outbox
from consent_service.operators.service import add_operator
from consent_service.providers.models import Provider
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from consent_service.webhooks.models import WebhookDelivery
from tests import factories
from tests.support import (
    Person,
    accept_invitation,
    csrf_token,
    invitation_path,
    set_up_two_factor,
    verified_sign_up,
)

PASSWORD = "a long enough password"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
STATUS_LINK = re.compile(r"http://127\.0\.0\.1:5000(/complaints/C-[0-9A-Z-]+\?k=[\w-]+)")


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app(complaint_evidence_max_bytes=1000)


def _form(client, **fields):
    page = client.get("/complaints/new")
    assert page.status_code == 200
    data = {
        "csrf_token": csrf_token(page.get_data(as_text=True)),
        "kind": "edited_without_consent",
        "description": "My face was put into an advert I never agreed to.",
        "location": "https://ads.example/123",
        "email": "ann@example.org",
        "language": "en",
        **fields,
    }
    return client.post("/complaints/new", data=data, content_type="multipart/form-data")


def _mail_to(site, to: str) -> dict:
    return [m for m in read_outbox(site.settings.mail_outbox_dir) if m["to"] == to][-1]


def _operator(site, email: str) -> Person:
    person = verified_sign_up(Person(site.client()), email, PASSWORD)
    with site.app.app_context(), db.unit_of_work() as s:
        _, invitation = add_operator(s, services().audit_key, email)
    accept_invitation(person, invitation_path(site.app, invitation))
    set_up_two_factor(person)
    return person


def _job(site, provider_name: str) -> str:
    with site.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        provider = s.exec(select(Provider).where(Provider.name == provider_name)).one()
        return factories.GateJobFactory(provider=provider, decided=True).id


def test_anyone_files_a_complaint_and_follows_it_by_the_mailed_link(site):
    client = site.client()
    page = client.get("/complaints/new").get_data(as_text=True)
    assert "within 48 hours" in page and "within 15 days" in page  # the published limits
    response = _form(client, evidence=(io.BytesIO(PNG), "shot.png"))
    assert response.status_code == 302
    status_path = response.headers["Location"]
    mail = _mail_to(site, "ann@example.org")
    assert mail["language"] == "en" and "Your complaint C-" in mail["subject"]
    assert STATUS_LINK.search(mail["body"]).group(1) == status_path
    status = client.get(status_path).get_data(as_text=True)
    assert 'data-status="received"' in status and "received, waiting for an operator" in status
    assert "within 48 hours" in status
    # The reference without the secret (or with another) is unknown.
    assert client.get(status_path.split("?")[0]).status_code == 404
    assert client.get(status_path[:-3] + "xyz").status_code == 404


def test_the_form_refuses_bad_input_clearly_and_keeps_nothing(site):
    client = site.client()
    with site.app.app_context():
        before = len(db.session().exec(select(Complaint)).all())
    for fields, says in (
        ({"description": "short"}, "Describe what happened in 10 to 5000 characters."),
        ({"email": "nope"}, "Enter a valid e-mail address."),
        ({"named": "0" * 32}, "No decision or job of this service matches"),
        (
            {"evidence": (io.BytesIO(b"MZ" + b"\0" * 40), "a.exe")},
            "The evidence file is not a kind we take",
        ),
        (
            {"evidence": (io.BytesIO(PNG + b"\0" * 2000), "big.png")},
            "The evidence file is too large",
        ),
    ):
        response = _form(client, **fields)
        assert response.status_code == 200, fields
        assert says in response.get_data(as_text=True), fields
    zh = site.client()
    zh.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN,zh"
    assert "电子邮件" in _form(zh, email="nope").get_data(as_text=True)
    with site.app.app_context():
        assert len(db.session().exec(select(Complaint)).all()) == before


def test_a_signed_in_person_finds_the_form_filled_in(site):
    person = verified_sign_up(Person(site.client()), "bo@example.org", PASSWORD)
    page = person.get("/complaints/new")
    assert 'value="bo@example.org"' in page and 'value="bo"' in page


def test_the_operator_works_a_complaint_the_provider_answers_it(site):
    job_id = _job(site, "Acme")
    api = site.client()
    hook = api.put(
        "/api/v1/webhook", json={"url": "http://127.0.0.1:9/acme-complaints"}, headers=site.auth()
    )
    assert hook.status_code == 200, hook.get_json()
    filed = _form(
        site.client(),
        named=job_id,
        language="zh-CN",
        email="cai@example.org",
        evidence=(io.BytesIO(PNG), "shot.png"),
    )
    assert filed.status_code == 302
    with site.app.app_context():
        complaint = db.session().exec(select(Complaint).where(Complaint.job_id == job_id)).one()
        delivery = (
            db.session()
            .exec(select(WebhookDelivery).where(WebhookDelivery.event == "complaint.opened"))
            .one()
        )
    assert json.loads(delivery.body)["data"]["complaint_id"] == complaint.id
    assert "cai@example.org" not in delivery.body

    # Only operators reach the queue.
    assert site.client().get("/operator/complaints").status_code == 302
    plain = verified_sign_up(Person(site.client()), "plain@example.org", PASSWORD)
    assert plain.client.get("/operator/complaints").status_code == 403
    operator = _operator(site, "op@example.org")
    queue = operator.get("/operator/complaints")
    assert complaint.reference in queue and 'data-clock="due"' in queue
    page = f"/operator/complaints/{complaint.id}"
    assert "cai@example.org" in operator.get(page)
    evidence = operator.client.get(f"{page}/evidence")
    assert (evidence.status_code, evidence.data, evidence.mimetype) == (200, PNG, "image/png")

    # The provider reads and answers its complaint; another provider gets a 404.
    path = f"/api/v1/complaints/{complaint.id}"
    assert api.get(path, headers=site.auth(site.other_key)).status_code == 404
    body = {"answer": "We removed the advert.", "content_removed": True}
    assert (
        api.post(f"{path}/answer", json=body, headers=site.auth(site.other_key)).status_code == 404
    )
    assert api.post(f"{path}/answer", json={"answer": ""}, headers=site.auth()).status_code == 422
    read = api.get(path, headers=site.auth()).get_json()
    assert read["job_id"] == job_id and "email" not in read and "cai" not in json.dumps(read)
    answered = api.post(f"{path}/answer", json=body, headers=site.auth())
    assert answered.status_code == 200 and answered.get_json()["answer"] == body["answer"]

    assert operator.post(f"{page}/acknowledge", {}, form_page=page).status_code == 302
    assert "We removed the advert." in operator.get(page)
    response = operator.post(
        f"{page}/resolve",
        {"outcome": "upheld", "message": "广告已被删除。", "confirm": "y"},
        form_page=page,
    )
    assert response.status_code == 302
    mail = _mail_to(site, "cai@example.org")
    assert mail["language"] == "zh-CN" and "广告已被删除。" in mail["body"]
    again = api.post(f"{path}/answer", json=body, headers=site.auth())
    assert again.status_code == 409  # resolved: nothing more to answer
    with site.app.app_context():
        events = [
            e.event_type
            for e in db.session().exec(select(AuditEvent).order_by(AuditEvent.seq))
            if e.event_type.startswith("complaint.")
            and e.payload.get("complaint_id") == complaint.id
        ]
    assert events == [
        "complaint.opened",
        "complaint.evidence_viewed",
        "complaint.provider_answered",
        "complaint.acknowledged",
        "complaint.resolved",
        "complaint.upheld",
    ]


def test_the_api_documents_the_complaint_operations(site):
    document = site.client().get("/api/v1/openapi.json").get_json()
    assert "/api/v1/complaints/{complaint_id}/answer" in document["paths"]
    events = document["components"]["schemas"]["WebhookEvent"]["enum"]
    assert {"complaint.opened", "complaint.resolved"} <= set(events)


def test_complaints_mailing_one_address_are_throttled_like_account_mails(make_api_app):
    site = make_api_app(mail_rate_limit_address="1/hour")
    client = site.client()
    assert _form(client, email="flood@example.org").status_code == 302
    refused = _form(client, email="flood@example.org")
    assert refused.status_code == 429
    assert "Too many mails were asked for this address" in refused.get_data(as_text=True)
    with site.app.app_context():
        assert len(db.session().exec(select(Complaint)).all()) == 1
    assert len([m for m in read_outbox(site.settings.mail_outbox_dir)]) == 1


def test_the_cli_lists_the_queue_and_fails_on_overdue_complaints(make_api_app):
    site = make_api_app()

    def cli(*args: str):
        return CliRunner().invoke(main, list(args), obj=AppLoader(lambda: site.app))

    assert _form(site.client(), email="due@example.org").status_code == 302
    listed = cli("complaints", "list")
    assert listed.exit_code == 0 and " received " in listed.output and "due" in listed.output
    assert cli("complaints", "list", "--overdue").exit_code == 0  # nothing overdue yet
    with site.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        late = factories.ComplaintFactory(created_at=utcnow() - timedelta(days=3))
    overdue = cli("complaints", "list", "--overdue")
    assert overdue.exit_code == 1
    assert late.reference in overdue.output and "overdue" in overdue.output
    assert "due@example.org" not in overdue.output
