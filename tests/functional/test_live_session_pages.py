"""The live consent session's pages through the real app: /enroll leads to /live (and only there:
the retired camera and microphone pages' addresses redirect to it), which shows
the server's script (its moves and code, in the page's language) with its script file; the
upload is refused for an unknown, another person's or used session, an empty or too large
recording and a missing CSRF token; the status page follows it. A grant's form leads to the
step-up page, whose session is short and tied to the waiting action. The operators' review
queue answers 403 to anyone else. No worker runs here (its side: tests/unit/biometrics/
test_live_session_pipeline.py, tests/e2e/test_live_session.py)."""

from __future__ import annotations

import io
import re

import pytest
from sqlmodel import select

from consent_service import db
from consent_service.accounts.models import StepUp
from consent_service.audit.models import AuditEvent
from consent_service.biometrics.live_models import LiveSession
from consent_service.operators.service import add_operator
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from tests.support import (
    Person,
    accept_invitation,
    invitation_path,
    set_up_two_factor,
    step_up_of,
    verified_sign_up,
)

PASSWORD = "a long enough password"
ZH = "zh-CN,zh;q=0.9,en;q=0.5"
MAX_BYTES = 4000


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app(live_recording_max_bytes=MAX_BYTES)


def _sign_up(site, email: str, accept_language: str = "en-US") -> Person:
    client = site.client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = accept_language
    return verified_sign_up(Person(client), email, PASSWORD, display_name=email[:4])


def _page(person: Person, path: str = "/live") -> tuple[str, str, str]:
    html = person.get(path)
    url = re.search(r'data-upload-url="([^"]+)"', html).group(1)
    token = re.search(r'data-csrf="([^"]+)"', html).group(1)
    return html, url, token


def _upload(person: Person, url: str, token: str | None, recording: bytes | None):
    data = {} if recording is None else {"recording": (io.BytesIO(recording), "session.webm")}
    headers = {"X-CSRFToken": token} if token else {}
    return person.client.post(url, data=data, headers=headers, content_type="multipart/form-data")


def _session(site, session_id: str) -> LiveSession:
    with site.app.app_context():
        s = db.session()
        row = s.get(LiveSession, session_id)
        s.close()
        return row


def test_enroll_leads_to_the_live_session_which_shows_its_script(site):
    person = _sign_up(site, "lena@example.org")
    assert 'href="/live"' in person.get("/enroll")
    html, url, _ = _page(person)
    row = _session(site, url.rsplit("/", 1)[1])
    assert (row.purpose, row.status, row.language) == ("enroll", "issued", "en")
    assert f'data-moves="{",".join(row.moves)}"' in html and len(row.moves) >= 4
    assert " ".join(row.code) in html and len(row.code) >= 6
    assert "live_session.js" in html and "<script>" not in html
    assert "Turn your head" in html or "Look " in html or "camera" in html


def test_the_retired_pages_lead_to_the_live_session_and_enroll_links_only_to_it(site):
    person = _sign_up(site, "rita@example.org")
    for old in ("/enroll/live", "/enroll/voice/live"):
        moved = person.client.get(old)
        assert moved.status_code == 302 and moved.headers["Location"] == "/live"
        # Signed out, the same address leads to the sign-in page and then to /live.
        anonymous = site.client().get(old, follow_redirects=True)
        assert anonymous.request.path == "/login" and "next=/live" in anonymous.request.url
    assert person.client.post("/enroll/live/" + "0" * 32).status_code == 404
    enroll = person.get("/enroll")
    main = enroll[enroll.index("<main") :]
    links = set(re.findall(r'<a [^>]*href="(/(?:enroll|live)[^"]*)"', main))
    forms = set(re.findall(r'<form [^>]*enctype="multipart/form-data"[^>]*>', main))
    assert links == {"/live"} and len(forms) == 2  # the uploads, allowed in development
    site.settings.allow_uploaded_enrollment = False
    try:
        enroll = person.get("/enroll")
        main = enroll[enroll.index("<main") :]
        assert set(re.findall(r'<a [^>]*href="(/(?:enroll|live)[^"]*)"', main)) == {"/live"}
        assert 'type="file"' not in main
    finally:
        site.settings.allow_uploaded_enrollment = None


def test_the_page_speaks_chinese_to_a_chinese_browser(site):
    person = _sign_up(site, "li@example.org", ZH)
    html, url, _ = _page(person)
    assert '<html lang="zh-CN">' in html
    assert _session(site, url.rsplit("/", 1)[1]).language == "zh-CN"
    assert "用摄像头现场录入" in html


def test_the_upload_is_refused_unless_it_is_the_persons_unused_session(site):
    person = _sign_up(site, "mo@example.org")
    other = _sign_up(site, "ned@example.org")
    _html, url, token = _page(person)
    assert _upload(person, url, None, b"clip").status_code == 400  # no CSRF token
    assert _upload(person, url + "x", token, b"clip").status_code in (404, 422)
    _o_html, _o_url, other_token = _page(other)
    assert _upload(other, url, other_token, b"clip").status_code in (404, 422)
    assert _upload(person, url, token, b"").status_code == 422
    assert _upload(person, url, token, b"x" * (MAX_BYTES + 1)).status_code == 413
    accepted = _upload(person, url, token, b"clip")
    assert accepted.status_code == 202, accepted.get_json()
    status_url = accepted.get_json()["status_url"]
    assert person.client.get(status_url).get_json()["status"] == "pending"
    assert other.client.get(status_url).status_code == 404
    again = _upload(person, url, token, b"clip")
    assert again.status_code == 422 and "already used" in again.get_json()["error"]
    row = _session(site, url.rsplit("/", 1)[1])
    assert row.status == "pending" and row.recording_bytes == 4 and row.recording_key


def test_a_grant_waits_for_a_short_live_check_and_revoking_does_not(site):
    person = _sign_up(site, "ora@example.org")
    grant = {
        "operations": ["face_swap"],
        "roles": ["source"],
        "provider_scope": "all",
        "agree": "y",
        "notice_version": "2026-11-1",
    }
    waiting = person.post("/grants/new?modality=face", grant, form_page="/grants/new")
    step_up_id = step_up_of(waiting)
    assert "You have granted nothing" in person.get("/")  # nothing granted yet
    html, url, _ = _page(person, waiting.headers["Location"])
    assert "Confirm it is you" in html and "face swap" in html
    row = _session(site, url.rsplit("/", 1)[1])
    assert (row.purpose, row.step_up_id, len(row.moves)) == ("step_up", step_up_id, 1)
    # After the code, the person reads aloud what they consent to; the page shows it for
    # STATEMENT_SECONDS more, and the recording is checked for it.
    statement = "I consent to face swap with my face, by any provider."
    assert row.statement == statement and statement in html
    assert 'data-statement-seconds="10.0"' in html
    with site.app.app_context():
        action = db.session().get(StepUp, step_up_id)
        assert (action.kind, action.status, action.live_session_id) == ("grant", "waiting", row.id)
    # Another account cannot open the action's check.
    other = _sign_up(site, "pip@example.org")
    assert other.client.get(waiting.headers["Location"]).status_code == 404


def test_a_chinese_grant_s_check_asks_for_the_statement_in_chinese(site):
    person = _sign_up(site, "zhao@example.org", ZH)
    grant = {
        "operations": ["face_swap", "face_reenactment"],
        "roles": ["source"],
        "provider_scope": "all",
        "agree": "y",
        "notice_version": "2026-11-1",
    }
    waiting = person.post("/grants/new?modality=face", grant, form_page="/grants/new")
    html, url, _ = _page(person, waiting.headers["Location"])
    row = _session(site, url.rsplit("/", 1)[1])
    assert row.language == "zh-CN" and row.statement
    assert (
        row.statement == "我同意任何提供者对我的人脸进行换脸和人脸驱动。" and row.statement in html
    )
    assert not re.search("[A-Za-z]{3}", row.statement)


def test_only_operators_see_the_review_queue(site):
    person = _sign_up(site, "quin@example.org")
    assert person.client.get("/operator/reviews").status_code == 403


def _operator(site, email: str) -> Person:
    person = verified_sign_up(Person(site.client()), email, PASSWORD)
    with site.app.app_context(), db.unit_of_work() as s:
        _, invitation = add_operator(s, services().audit_key, email)
    accept_invitation(person, invitation_path(site.app, invitation))
    set_up_two_factor(person)  # no console without the second factor
    return person


def _passed_awaiting_review(site, person: Person) -> str:
    """A session whose recording arrived (through the page) and which the worker passed: the
    row as `live_session.record` leaves it (that step has tests of its own)."""
    _html, url, token = _page(person)
    assert _upload(person, url, token, WEBM).status_code == 202
    session_id = url.rsplit("/", 1)[1]
    with site.app.app_context(), db.unit_of_work() as s:
        row = s.get(LiveSession, session_id)
        row.status, row.review_status = "passed", "awaiting"
        row.scores, row.heard = {"code_match": 1.0}, "4 7 1 9 0 2"
        row.finished_at = row.keep_until = utcnow()
        s.add(row)
    return session_id


WEBM = b"\x1a\x45\xdf\xa3" + b"recording" * 10


def test_an_operator_watches_and_approves_a_recording_every_view_audited(site):
    person = _sign_up(site, "rae@example.org")
    session_id = _passed_awaiting_review(site, person)
    reviewer = _operator(site, "reviewer@example.org")
    queue = reviewer.get("/operator/reviews")
    assert f"/operator/reviews/{session_id}" in queue and "rae@example.org" in queue
    page = reviewer.get(f"/operator/reviews/{session_id}")
    assert "4 7 1 9 0 2" in page and "code_match" in page
    assert f'src="/operator/reviews/{session_id}/recording"' in page
    # The person themself cannot fetch it: operators only.
    assert person.client.get(f"/operator/reviews/{session_id}/recording").status_code == 403
    for _ in range(2):
        shown = reviewer.client.get(f"/operator/reviews/{session_id}/recording")
        assert shown.status_code == 200 and shown.data == WEBM
        assert shown.headers["Cache-Control"] == "no-store, private"
    with site.app.app_context():
        views = (
            db.session()
            .exec(
                select(AuditEvent).where(AuditEvent.event_type == "live_session.recording_viewed")
            )
            .all()
        )
        assert len(views) == 2 and views[0].actor.startswith("operator:")
    approved = reviewer.post(
        f"/operator/reviews/{session_id}/approve",
        {"note": "identity document seen", "document_seen": "y"},
        form_page=f"/operator/reviews/{session_id}",
    )
    assert approved.status_code == 302
    row = _session(site, session_id)
    assert (row.review_status, row.document_seen, row.recording_key) == ("approved", True, None)
    assert reviewer.client.get(f"/operator/reviews/{session_id}/recording").status_code == 404
    assert f"/operator/reviews/{session_id}" not in reviewer.get("/operator/reviews")
    # Told on the dashboard, in the page's language.
    assert "confirmed it: your assurance level is now reviewed" in person.get("/")


def test_an_operator_rejects_a_recording_with_a_reason_the_person_reads(site):
    person = _sign_up(site, "sol@example.org", ZH)
    session_id = _passed_awaiting_review(site, person)
    reviewer = _operator(site, "reviewer2@example.org")
    refused = reviewer.post(
        f"/operator/reviews/{session_id}/reject", {"reason": ""}, form_page="/operator/reviews"
    )
    assert refused.status_code == 302 and _session(site, session_id).review_status == "awaiting"
    rejected = reviewer.post(
        f"/operator/reviews/{session_id}/reject",
        {"reason": "A photo held up to the camera."},
        form_page="/operator/reviews",
    )
    assert rejected.status_code == 302
    assert _session(site, session_id).review_status == "rejected"
    dashboard = person.get("/")
    assert (
        "运营人员观看了您的现场录入录像" in dashboard
        and "A photo held up to the camera." in dashboard
    )
