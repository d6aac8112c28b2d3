"""Just-in-time consent requests end to end, with the real worker: a job finds a consented
person and a stranger → needs_consent; the provider asks the stranger; the mail lands in the
local outbox; someone else with the link is refused (their face is not the stranger's); the
stranger signs up, enrolls and approves in the browser → the job is decided again (allow),
and the provider's receiver gets a signed `job.decided` and `consent_request.answered`."""

from __future__ import annotations

import re
from collections.abc import Iterator

import jwt
import pytest

from consent_service.mail import read_outbox
from consent_service.vocabulary import Operation
from tests.e2e.conftest import Api
from tests.support import (
    Person,
    Receiver,
    pass_step_up,
    serving,
    side_by_side,
    verified_sign_up,
)

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def receiver(stack) -> Iterator[Receiver]:
    with serving("/hooks") as rec:
        yield rec


def _signed_up(stack, email: str) -> Person:
    return verified_sign_up(Person(stack.client()), email, PASSWORD)


def test_a_stranger_approves_and_the_job_flips_to_allow(
    stack, photos, strangers, receiver, tmp_path
):
    _, key = stack.provider("Request Studio")
    _, other_key = stack.provider("Nosy Labs")
    api = Api(stack.client(), key)
    hook = api.client.put("/api/v1/webhook", json={"url": receiver.url}, headers=api.headers)
    receiver.secret = hook.get_json()["secret"]

    known = stack.enroll("known@example.org", photos["obama.jpg"])
    assert known.status == "completed", known.error
    stack.grant(known.subject_id, Operation.FACE_SWAP)
    pair = side_by_side(tmp_path / "pair.jpg", photos["obama3.jpg"], strangers[1])
    job = api.gate(target=[pair])
    assert job["decision"] == "needs_consent", job
    outcomes = [f["outcome"] for f in job["findings"]]
    assert sorted(outcomes) == ["consented", "unenrolled"]
    stranger_index = outcomes.index("unenrolled")

    # The provider asks; the same Idempotency-Key answers with the same request.
    ask = {
        "job_id": job["id"],
        "finding": stranger_index,
        "email": "stranger@example.org",
        "purpose": "A birthday video",
        "valid_until": "2031-01-01T00:00:00Z",
        "message": "Your friend Ann made this.",
    }
    headers = {**api.headers, "Idempotency-Key": "ask-1"}
    created = api.client.post("/api/v1/consent-requests", json=ask, headers=headers)
    assert created.status_code == 202, created.get_json()
    request_id = created.get_json()["id"]
    assert created.get_json()["status"] == "pending"
    again = api.client.post("/api/v1/consent-requests", json=ask, headers=headers)
    assert (again.status_code, again.get_json()["id"]) == (200, request_id)
    assert set(created.get_json()) == {  # never the face kept for the request
        "id",
        "status",
        "job_id",
        "email",
        "operation",
        "roles",
        "purpose",
        "message",
        "valid_until",
        "expires_at",
        "created_at",
        "answered_at",
        "grant_id",
    }
    other = api.client.get(
        f"/api/v1/consent-requests/{request_id}", headers={"Authorization": f"Bearer {other_key}"}
    )
    assert other.status_code == 404

    # The mail, in the embedded default's outbox, carries the link; the address has no account,
    # so it is in Chinese and in English, each complete.
    (mail,) = [  # not the other tests' sign-up mails
        m for m in read_outbox(stack.settings.mail_outbox_dir) if m["to"] == "stranger@example.org"
    ]
    assert mail["to"] == "stranger@example.org" and "Request Studio" in mail["subject"]
    assert mail["language"] == "zh-CN, en"
    assert "请求您同意编辑您的人脸 / Request Studio asks" in mail["subject"]
    for text in ("换脸：把我的脸放进其他图像或视频 (face_swap)", "目的：A birthday video"):
        assert text in mail["body"]
    for text in ("Face swap: put my face into other images or videos", "Why: A birthday video"):
        assert text in mail["body"]
    assert "对方留言：Your friend Ann made this." in mail["body"]
    assert "If you do nothing, nothing is granted." in mail["body"]
    link = re.search(r"https?://\S+(/requests/\S+)", mail["body"]).group(1)

    # Someone else who got the link: signed in, enrolled, but not the stranger's face.
    nosy = _signed_up(stack, "nosy@example.org")
    assert stack.enroll("nosy@example.org", photos["biden.jpg"]).status == "completed"
    page = nosy.get(link)
    assert "Request Studio" in page and "A birthday video" in page
    refused = nosy.post(
        f"/requests/{request_id}/approve", {"agree": "y"}, form_page=link, follow_redirects=True
    )
    assert "does not match the person" in refused.get_data(as_text=True)
    assert api.job(job["id"]).get_json()["decision"] == "needs_consent"

    # The stranger opens the link, signs up, enrolls, finds it in the inbox and approves.
    stranger = Person(stack.client())
    assert "Sign in" in stranger.get(link)
    verified_sign_up(stranger, "stranger@example.org", PASSWORD)
    assert stack.enroll("stranger@example.org", strangers[1]).status == "completed"
    inbox = stranger.get("/requests")
    assert "Request Studio" in inbox and "face swap" in inbox and "2031-01-01" in inbox
    approved = stranger.post(
        f"/requests/{request_id}/approve", {"agree": "y"}, form_page=f"/requests/{request_id}"
    )
    pass_step_up(stack.app, approved)  # the live check has tests of its own

    decided = api.job(job["id"]).get_json()
    assert decided["decision"] == "allow", decided
    assert [f["outcome"] for f in decided["findings"]] == ["consented", "consented"]
    assert decided["token"] != job["token"]
    assert jwt.decode(decided["token"], options={"verify_signature": False})["revision"] == 2
    status = api.client.get(f"/api/v1/consent-requests/{request_id}", headers=api.headers)
    assert status.get_json()["status"] == "approved" and status.get_json()["grant_id"]

    posts = receiver.wait_for("job.decided", job_id=job["id"], decision="allow")
    assert all(p["verified"] for p in posts)
    (answered,) = receiver.wait_for(
        "consent_request.answered", consent_request_id=request_id, status="approved"
    )
    assert answered["verified"] and answered["body"]["data"]["job_id"] == job["id"]

    # Answered once: a second approval (or a decline) changes nothing.
    late = nosy.post(f"/requests/{request_id}/decline", {}, form_page=link, follow_redirects=True)
    assert "no longer be answered" in late.get_data(as_text=True)
