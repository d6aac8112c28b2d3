"""The live voice enrollment pages through the real app: /enroll leads to them, the page shows a
phrase in its own language, and the upload is refused for an unknown, another person's, used or
expired challenge, an empty or too large recording, or a missing CSRF token. No worker runs: an
accepted recording stays a pending enrollment (the worker's side: tests/e2e/test_live_voice.py)."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from sqlmodel import select

from consent_service import db
from consent_service.accounts.models import Subject
from consent_service.biometrics.live_models import LiveChallenge
from consent_service.biometrics.models import Enrollment
from consent_service.biometrics.voice_challenge import SENTENCES
from consent_service.runtime import services
from tests.support import Person, verified_sign_up

PASSWORD = "a long enough password"
ZH = "zh-CN,zh;q=0.9,en;q=0.5"
MAX_BYTES = 4000


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app(voice_recording_max_bytes=MAX_BYTES)


def _sign_up(site, email: str, accept_language: str = "en-US") -> Person:
    client = site.client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = accept_language
    return verified_sign_up(Person(client), email, PASSWORD, display_name=email[:4])


def _page(person: Person) -> tuple[str, str, str]:
    """The voice page's HTML, its upload URL and the CSRF token its script sends."""
    html = person.get("/enroll/voice/live")
    url = re.search(r'data-upload-url="([^"]+)"', html).group(1)
    token = re.search(r'data-csrf="([^"]+)"', html).group(1)
    return html, url, token


def _upload(person: Person, url: str, token: str | None, recording: bytes | None):
    data = {} if recording is None else {"recording": (io.BytesIO(recording), "recording.webm")}
    headers = {"X-CSRFToken": token} if token else {}
    return person.client.post(url, data=data, headers=headers, content_type="multipart/form-data")


def _challenge(site, challenge_id: str) -> LiveChallenge:
    with site.app.app_context():
        s = db.session()
        row = s.get(LiveChallenge, challenge_id)
        s.close()
        return row


def test_enroll_page_leads_to_the_recording_page_and_keeps_the_upload(site):
    person = _sign_up(site, "vera@example.org")
    enroll = person.get("/enroll")
    live = enroll.index('href="/enroll/voice/live"')
    upload = enroll.index('action="/enroll/voice"')
    assert live < upload and 'accept="audio/*"' in enroll  # recording first, upload as fallback
    assert "Enroll your voice with your microphone" in enroll


def test_the_page_shows_a_phrase_in_its_language_and_stores_it(site):
    english = _sign_up(site, "eli@example.org")
    html, url, _ = _page(english)
    phrase = re.search(r'<blockquote id="voice-phrase" class="phrase" lang="en">([^<]+)<', html)
    assert phrase and sum(s in phrase.group(1) for s in SENTENCES["en"]) >= 2
    assert "The words you read are not checked" in html
    assert 'data-min-seconds="6"' in html and 'data-max-seconds="60"' in html
    assert "live_voice.js" in html and "<script>" not in html
    row = _challenge(site, url.rsplit("/", 1)[1])
    assert (row.modality, row.language, row.phrase) == ("voice", "en", phrase.group(1))
    assert row.used_at is None and row.expires_at > row.created_at

    chinese = _sign_up(site, "wei@example.org", accept_language=ZH)
    html, url, _ = _page(chinese)
    assert '<html lang="zh-CN">' in html and "开始录音" in html
    phrase = re.search(r'lang="zh-CN">([^<]+)</blockquote>', html).group(1)
    assert sum(s in phrase for s in SENTENCES["zh-CN"]) >= 2
    row = _challenge(site, url.rsplit("/", 1)[1])
    assert (row.language, row.phrase) == ("zh-CN", phrase)


def test_the_upload_is_bound_to_the_persons_fresh_challenge(site):
    me = _sign_up(site, "mira@example.org")
    other = _sign_up(site, "otto@example.org")
    _, url, token = _page(me)
    _, _, other_token = _page(other)

    assert _upload(me, url, None, b"sound").status_code == 400  # no CSRF token
    stolen = _upload(other, url, other_token, b"sound")
    assert stolen.status_code == 404 and "This challenge is not known." in stolen.json["error"]
    unknown = _upload(me, url.rsplit("/", 1)[0] + "/" + "0" * 32, token, b"sound")
    assert unknown.status_code == 404 and "Reload the page" in unknown.json["error"]
    empty = _upload(me, url, token, None)
    assert empty.status_code == 422 and "No recording arrived." in empty.json["error"]
    large = _upload(me, url, token, b"x" * (MAX_BYTES + 1))
    assert large.status_code == 413 and "The recording is too large" in large.json["error"]

    accepted = _upload(me, url, token, b"x" * 100)
    assert accepted.status_code == 202, accepted.json
    enrollment_id = accepted.json["enrollment_id"]
    assert accepted.json["status_url"] == f"/enrollments/{enrollment_id}"
    with site.app.app_context():
        s = db.session()
        enrollment = s.get(Enrollment, enrollment_id)
        assert (enrollment.modality, enrollment.status) == ("voice", "pending")
        [key] = enrollment.media_keys
        assert services().media_store.get(key) == b"x" * 100
        challenge = s.get(LiveChallenge, url.rsplit("/", 1)[1])
        assert challenge.enrollment_id == enrollment_id and challenge.used_at is not None
        s.close()
    assert "Checking your recording" in me.get(f"/enrollments/{enrollment_id}")

    replay = _upload(me, url, token, b"x" * 100)
    assert replay.status_code == 422 and "already used" in replay.json["error"]

    # A page left open past its time.
    _, late_url, token = _page(me)
    with site.app.app_context(), db.unit_of_work() as s:
        late = s.get(LiveChallenge, late_url.rsplit("/", 1)[1])
        late.expires_at = late.created_at - timedelta(seconds=1)
    expired = _upload(me, late_url, token, b"x" * 100)
    assert expired.status_code == 422 and "This challenge expired." in expired.json["error"]


def test_refusals_are_in_the_readers_language(site):
    person = _sign_up(site, "lan@example.org", accept_language=ZH)
    _, url, token = _page(person)
    assert _upload(person, url, token, b"x" * 10).status_code == 202
    replay = _upload(person, url, token, b"x" * 10)
    assert replay.status_code == 422 and "已被使用" in replay.json["error"]


def test_a_guardian_records_the_selected_childs_voice(site):
    guardian = _sign_up(site, "gina@example.org")
    added = guardian.post(
        "/children",
        {
            "display_name": "Kit",
            "date_of_birth": "2019-05-05",
            "relationship": "parent",
            "declaration": "y",
        },
    )
    assert added.status_code == 302, added.get_data(as_text=True)
    with site.app.app_context():
        child = db.session().exec(select(Subject).where(Subject.display_name == "Kit")).one().id
    assert guardian.post("/act-as", {"subject": str(child)}, form_page="/").status_code == 302
    _, url, token = _page(guardian)
    assert _challenge(site, url.rsplit("/", 1)[1]).subject_id == child
    accepted = _upload(guardian, url, token, b"x" * 10)
    assert accepted.status_code == 202
    with site.app.app_context():
        enrollment = db.session().get(Enrollment, accepted.json["enrollment_id"])
        assert enrollment.subject_id == child
