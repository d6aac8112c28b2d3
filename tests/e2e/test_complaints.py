"""A complaint from the public page to its resolution, with the real stack (worker, Redis, the
real face model): a provider gates a photo of a stranger; the stranger, in a Chinese browser
and without an account, complains on `/complaints/new` with the photo as evidence and the job's
decision token; the operator, in the console, sees the clocks, opens the evidence and
acknowledges; the provider's receiver gets a signed `complaint.opened` and the provider answers
through the API; the operator resolves it (upheld); the complainant's mail, in Chinese, tells
the outcome and the status page shows it. Screenshots in test-artifacts/complaints/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import sync_playwright
from sqlmodel import Session, select

from consent_service import db
from consent_service.audit.models import AuditEvent
from consent_service.mail import read_outbox
from consent_service.operators.service import add_operator
from consent_service.runtime import services
from tests import browser
from tests.e2e.conftest import Api
from tests.support import (
    Person,
    Receiver,
    accept_invitation,
    invitation_path,
    mailed_path,
    serving,
    set_up_two_factor,
    totp_code,
    verified_sign_up,
)

browser.require_chromium()
pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"
COMPLAINANT = "xiao.li@example.org"
OPERATOR = "ops@example.org"
SHOTS = "complaints"


@pytest.fixture(scope="module")
def receiver(stack) -> Iterator[Receiver]:
    with serving("/hooks/complaints") as rec:
        yield rec


def _operator(stack) -> str:
    """An operator account with its second factor on; returns the TOTP secret."""
    person = verified_sign_up(Person(stack.client()), OPERATOR, PASSWORD)
    with stack.app.app_context(), db.unit_of_work() as s:
        _, invitation = add_operator(s, services().audit_key, OPERATOR)
    accept_invitation(person, invitation_path(stack.app, invitation))
    return set_up_two_factor(person)


def _sign_in(page, base_url: str, totp_secret: str) -> None:
    """The operator signs in in Chromium: password, then the second factor (the next time
    step's code: the set-up used this one, and a code works once)."""
    page.goto(f"{base_url}/login?next=/operator/complaints")
    page.fill("input[name=email]", OPERATOR)
    page.fill("input[name=password]", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url("**/login/code**")
    page.fill("input[name=code]", totp_code(totp_secret, ahead=1))
    page.click("main form button[type=submit]")
    page.wait_for_url("**/operator/complaints")


def test_a_complaint_from_the_public_page_to_its_resolution(
    stack, base_url, strangers, receiver, tmp_path
):
    _, key = stack.provider("Complaint Studio")
    api = Api(stack.client(), key)
    hook = api.client.put("/api/v1/webhook", json={"url": receiver.url}, headers=api.headers)
    receiver.secret = hook.get_json()["secret"]
    job = api.gate(target=[strangers[2]])
    assert job["decision"] == "needs_consent" and job["token"], job
    totp_secret = _operator(stack)

    with sync_playwright() as pw:
        person = browser.launch(pw, tmp_path / "complainant", locale="zh-CN")
        staff = browser.launch(pw, tmp_path / "operator", locale="en-US")
        try:
            # The complainant, no account, in Chinese.
            page = person.new_page()
            page.goto(f"{base_url}/complaints/new")
            assert page.locator("h2").inner_text() == "提出投诉"
            assert "48" in page.locator("#complaint-limits").inner_text()
            assert page.locator("select[name=language]").input_value() == "zh-CN"
            page.check("input[name=kind][value=edited_without_consent]")
            page.fill(
                "textarea[name=description]", "这张照片里的人是我，我从未同意任何人编辑我的脸。"
            )
            page.fill("textarea[name=location]", "https://video.example/watch/42")
            page.set_input_files("input[name=evidence]", str(strangers[2]))
            page.fill("textarea[name=named]", job["token"])
            page.fill("input[name=email]", COMPLAINANT)
            browser.shot(page, SHOTS, "1-public-form-zh")
            page.click("#complaint-form button[type=submit]")
            page.wait_for_selector("#complaint-status")
            assert page.locator("#complaint-status").get_attribute("data-status") == "received"
            reference = page.locator("h2").inner_text().split()[-1]
            assert reference.startswith("C-")
            browser.shot(page, SHOTS, "2-status-received-zh")
            status_path = mailed_path(stack.settings, COMPLAINANT, "/complaints/")
            assert page.url.endswith(status_path)

            # The provider is told, signed, without the complainant's address.
            (opened,) = [r for r in receiver.wait_for("complaint.opened") if r["answered"] == 200]
            assert opened["verified"]
            data = opened["body"]["data"]
            assert (data["reference"], data["job_id"]) == (reference, job["id"])
            assert COMPLAINANT not in str(opened["body"])

            # The operator: the queue with its clocks, the complaint, the evidence, acknowledge.
            console = staff.new_page()
            _sign_in(console, base_url, totp_secret)
            row = console.locator(f'tr[data-reference="{reference}"]')
            assert row.locator("td.clock").first.get_attribute("data-clock") == "due"
            browser.shot(console, SHOTS, "3-operator-queue")
            row.locator("a").click()
            console.wait_for_selector("#complaint")
            href = console.locator("#complaint-evidence").get_attribute("href")
            evidence = console.request.get(f"{base_url}{href}")
            assert evidence.ok and evidence.body() == strangers[2].read_bytes()
            console.click("#complaint-acknowledge button")
            console.wait_for_selector('#complaint[data-status="acknowledged"]')

            # The provider answers through the API; the operator reads the answer.
            answer = api.client.post(
                f"/api/v1/complaints/{data['complaint_id']}/answer",
                json={
                    "answer": "Output withdrawn; the edit was never published.",
                    "content_removed": True,
                },
                headers=api.headers,
            )
            assert answer.status_code == 200, answer.get_json()
            console.reload()
            assert "Output withdrawn" in console.locator("#provider-answer").inner_text()
            browser.shot(console, SHOTS, "4-operator-complaint-answered")

            console.check("input[name=outcome][value=upheld]")
            console.fill(
                "#complaint-resolve textarea[name=message]",
                "您的投诉成立：该提供方已删除相关内容。",
            )
            console.check("#complaint-resolve input[name=confirm]")
            console.click("#complaint-resolve button[type=submit]")
            console.wait_for_selector('#complaint[data-status="resolved"]')
            browser.shot(console, SHOTS, "5-operator-resolved")

            # The complainant's mail, in Chinese, and the status page.
            mails = [
                m for m in read_outbox(stack.settings.mail_outbox_dir) if m["to"] == COMPLAINANT
            ]
            assert [m["language"] for m in mails] == ["zh-CN", "zh-CN"]
            assert reference in mails[-1]["subject"] and "成立" in mails[-1]["subject"]
            assert "您的投诉成立：该提供方已删除相关内容。" in mails[-1]["body"]
            page.goto(f"{base_url}{status_path}")
            assert page.locator("#complaint-outcome").inner_text() == "成立"
            browser.shot(page, SHOTS, "6-status-resolved-zh")
        finally:
            person.close()
            staff.close()

    resolved = receiver.wait_for("complaint.resolved", complaint_id=data["complaint_id"])
    assert resolved[-1]["body"]["data"]["outcome"] == "upheld"
    with Session(stack.app.extensions["db_engine"]) as s:
        trail = [
            e.event_type
            for e in s.exec(select(AuditEvent).order_by(AuditEvent.seq))
            if e.payload.get("complaint_id") == data["complaint_id"]
        ]
    assert trail == [
        "complaint.opened",
        "complaint.evidence_viewed",
        "complaint.acknowledged",
        "complaint.provider_answered",
        "complaint.resolved",
        "complaint.upheld",
    ]
