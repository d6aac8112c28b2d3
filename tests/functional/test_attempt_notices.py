"""A protect-only person matched by a provider's job hears of it: a notice on the dashboard (in
English, then in Chinese), one daily digest mail, the opt-out on the account page and by the
mail's one-click link. The job is submitted through the API and recorded by the gate's real
record step; only the analysis (no worker runs here) is given, as tests.support.allow_job does."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select
from urllib3 import encode_multipart_formdata

from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.gate import pipeline
from consent_service.gate.decisions import Analysis, PersonSeen, Signing
from consent_service.mail import read_outbox
from consent_service.operators.tasks import notices_digest
from consent_service.runtime import services
from consent_service.vocabulary import Role
from tests.support import Person, mailed_link, verified_sign_up

EMAIL, PASSWORD = "mei@example.org", "a long enough password"


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app()


def _subject_id(site) -> int:
    with site.app.app_context():
        s = db.session()
        user = s.exec(select(User).where(User.email == EMAIL)).one()
        return s.exec(select(Subject).where(Subject.user_id == user.id)).one().id


def _blocked_job(site, subject_id: int) -> str:
    """A face_swap job of provider Acme in which the gate finds this person, twice."""
    client = site.client()
    body, content_type = encode_multipart_formdata(
        [
            ("operation", "face_swap"),
            ("source", ("a.jpg", b"an image")),
            ("target", ("b.jpg", b"x")),
        ]
    )
    answer = client.post("/api/v1/jobs", data=body, content_type=content_type, headers=site.auth())
    assert answer.status_code == 202, answer.get_json()
    job_id = answer.get_json()["id"]
    people = [
        PersonSeen(0, Role.SOURCE, (1, 2, 3, 4), subject_id, False),
        PersonSeen(1, Role.TARGET, (5, 6, 7, 8), subject_id, False),
    ]
    with site.app.app_context():
        svc = services()
        signing = Signing(svc.audit_key, svc.decision_signer, svc.pseudonyms)
        with db.unit_of_work() as s:
            pipeline.record(s, job_id, Analysis(people), signing, svc.media_store)
    return job_id


def _digest(site) -> list[dict]:
    """Run beat's daily task as the worker does; the digests mailed to the person so far."""
    with site.app.app_context():
        notices_digest()
    return [
        m
        for m in read_outbox(site.settings.mail_outbox_dir)
        if m["to"] == EMAIL and "/account/digest/off/" in m["body"]
    ]


def _digest_switch(person: Person, on: str) -> int:
    return person.post("/account/digest", {"on": on}, form_page="/account/password").status_code


def _notices(page: str) -> list[str]:
    found = re.search(r'<ul class="notices[^"]*">(.*?)</ul>', page, re.S)
    items = re.findall(r"<li[^>]*>(.*?)</li>", found.group(1), re.S) if found else []
    return [" ".join(re.sub(r"<[^>]+>", " ", item).split()) for item in items]


def test_a_protect_only_person_is_told_on_the_dashboard_and_once_a_day_by_mail(site):
    person = verified_sign_up(Person(site.client()), EMAIL, PASSWORD)
    assert person.post("/protect-only", {"on": "1"}, form_page="/").status_code == 302
    subject_id = _subject_id(site)

    job_id = _blocked_job(site, subject_id)
    page = person.get("/")
    [told] = _notices(page)  # found twice in the job, told once
    assert "Acme asked to edit media showing you (face swap)." in told
    assert "You are protect-only, so the edit was denied." in told
    assert f'href="/activity?job={job_id}"' in page
    ledger = person.get(f"/activity?job={job_id}")
    assert job_id[:12] in ledger and ledger.count("<tr class=") == 1  # that job only

    switched = person.post("/language", {"lang": "zh-CN", "next": "/"}, form_page="/")
    assert switched.status_code == 302
    [told] = _notices(person.get("/"))
    assert "Acme" in told and "换脸" in told and "protect-only" not in told
    assert "仅保护" in told

    [mail] = _digest(site)
    assert mail["language"] == "zh-CN" and "Acme" in mail["body"] and "换脸" in mail["body"]
    assert f"/activity?job={job_id}" in mail["body"]
    assert len(_digest(site)) == 1  # the next run has nothing new to send

    # The account page's switch turns it off and on; off, a new attempt is told on the page only.
    assert _digest_switch(person, "0") == 302
    second = _blocked_job(site, subject_id)
    assert len(_notices(person.get("/"))) == 2 and len(_digest(site)) == 1
    assert _digest_switch(person, "1") == 302
    digests = _digest(site)
    assert len(digests) == 2 and f"/activity?job={second}" in digests[-1]["body"]

    # The mail's link, opened without signing in: it asks first, then one click switches it off.
    link = mailed_link(person.client, EMAIL, "/account/digest/off/")
    stranger = site.client()
    asked = stranger.get(link)
    assert asked.status_code == 200 and '<form method="post">' in asked.get_data(as_text=True)
    with site.app.app_context():
        assert db.session().exec(select(User).where(User.email == EMAIL)).one().notice_digest
    done = stranger.post(link)  # no CSRF token: the signed link authorises it (RFC 8058)
    assert done.status_code == 200 and 'id="digest-off-done"' in done.get_data(as_text=True)
    _blocked_job(site, subject_id)
    assert len(_notices(person.get("/"))) == 3 and len(_digest(site)) == 2
    assert "digest-off-done" not in stranger.post(link[:-3] + "abc").get_data(as_text=True)
