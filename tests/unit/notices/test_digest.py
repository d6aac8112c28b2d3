"""The daily digest of attempt notices (notices/digest.py) on a real database session: what one
mail says in each reader's language, that it goes once (a repeated run sends nothing, a failed
send is retried, only a crash before the commit sends it again), and the opt-out."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlmodel import select

from consent_service.accounts.models import User
from consent_service.accounts.service import digest_off
from consent_service.errors import InvalidRequest
from consent_service.notices import digest
from consent_service.notices.models import SubjectNotice
from consent_service.notices.service import attempt_blocked, mail_notices, notify
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Outcome

SECRET = "s" * 32
BASE = "https://consent.example.org"
SENDER = "ops@example.org"


class _Mailbox:
    def __init__(self, down: bool = False):
        self.sent: list = []
        self.down = down

    def send(self, message) -> None:
        if self.down:
            raise OSError("mail server down")
        self.sent.append(message)


def _attempt(session, subject, outcome=Outcome.PROTECTED, job_id="j" * 32, when=None):
    attempt_blocked(
        session, subject.id, outcome, "Acme Studio", "face_swap", when or utcnow(), job_id, 1
    )


def _mail(session, box, subject, now=None) -> int:
    return digest.mail_digest(session, box, SENDER, subject.user_id, SECRET, BASE, now)


def test_one_mail_lists_the_days_attempts_in_the_readers_language(session, make_subject, babel_app):
    en, zh = make_subject(language="en"), make_subject(language="zh-CN")
    _attempt(session, en, Outcome.PROTECTED, "a" * 32)
    _attempt(session, en, Outcome.REVOKED, "b" * 32)
    _attempt(session, zh, Outcome.NOT_COVERED, "c" * 32)
    notify(session, en.id, "dispute.opened", "dispute.opened.holder", modality="face")
    session.commit()
    assert digest.due(session) == sorted([en.user_id, zh.user_id])

    box = _Mailbox()
    assert _mail(session, box, en) == 2 and _mail(session, box, zh) == 1
    session.commit()
    english, chinese = box.sent
    body = english.get_content()
    assert english["To"] == session.get(User, en.user_id).email
    assert english["Subject"] == "Attempts to edit you that were not allowed"
    assert "Acme Studio asked to edit media showing you (face swap). You are protect-only" in body
    assert "You revoked your consent to it, so it was denied." in body
    assert f"{BASE}/activity?job={'a' * 32}" in body and f"{BASE}/activity?job={'b' * 32}" in body
    assert "c" * 32 not in body  # someone else's attempt
    assert "matches yours" not in body  # the dispute notice keeps its own, immediate mail
    [link] = re.findall(re.escape(BASE) + r"/account/digest/off/\S+", body)
    assert english["List-Unsubscribe"] == f"<{link}>"
    assert english["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert chinese["Content-Language"] == "zh-CN" and "Acme Studio" in chinese.get_content()
    assert "换脸" in chinese.get_content() and "face swap" not in chinese.get_content()
    assert digest.due(session) == []

    # The immediate mail of notices leaves attempt notices to the digest.
    immediate = _Mailbox()
    assert mail_notices(session, immediate, SENDER) == 1
    assert "matches yours" in immediate.sent[0].get_content()


def test_a_digest_goes_once_and_a_failed_send_is_retried(session, make_subject, babel_app, reopen):
    person = make_subject(language="en")
    _attempt(session, person)
    session.commit()

    down = _Mailbox(down=True)
    assert _mail(session, down, person) == 0
    session.commit()
    assert down.sent == [] and digest.due(session) == [person.user_id]  # left for the next run

    up = _Mailbox()
    assert _mail(session, up, person) == 1
    session.commit()
    assert _mail(session, up, person) == 0  # a repeated or redelivered run sends nothing
    assert len(up.sent) == 1
    assert all(n.mailed_at for n in reopen().exec(select(SubjectNotice)))


def test_a_crash_between_the_send_and_the_commit_sends_the_same_mail_again(
    session, make_subject, babel_app
):
    # The one duplicate the digest allows (rather than losing a mail): the notices are marked
    # only in the transaction that commits after the send. Its Message-ID names the notices.
    person = make_subject(language="en")
    _attempt(session, person)
    session.commit()
    box = _Mailbox()
    assert _mail(session, box, person) == 1
    session.rollback()  # the worker died before the commit
    assert _mail(session, box, person) == 1
    session.commit()
    first, again = box.sent
    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"].startswith(f"<digest.{person.user_id}.")


def test_older_notices_than_the_lookback_are_left_to_the_dashboard(
    session, make_subject, babel_app
):
    person = make_subject(language="en")
    _attempt(session, person)
    notice = session.exec(select(SubjectNotice)).one()
    notice.created_at = utcnow() - digest.LOOKBACK - timedelta(hours=1)
    session.commit()
    assert digest.due(session) == [] and _mail(session, _Mailbox(), person) == 0


def test_the_unsubscribe_link_switches_the_digest_off_and_only_that(
    session, make_subject, babel_app
):
    person, other = make_subject(language="en"), make_subject(language="en")
    _attempt(session, person)
    session.commit()
    box = _Mailbox()
    _mail(session, box, person)
    session.commit()
    [token] = re.findall(r"/account/digest/off/(\S+)", box.sent[0].get_content())

    _attempt(session, person, job_id="d" * 32)
    _attempt(session, other, job_id="e" * 32)
    assert digest_off(session, SECRET, token).id == person.user_id
    session.commit()
    assert session.get(User, person.user_id).notice_digest is False
    assert session.get(User, other.user_id).notice_digest is True
    assert digest.due(session) == [other.user_id]
    assert _mail(session, box, person) == 0 and len(box.sent) == 1
    # The notice stays, for the dashboard, unmailed.
    [kept] = [n for n in session.exec(select(SubjectNotice)) if n.params["job_id"] == "d" * 32]
    assert kept.mailed_at is None
    with pytest.raises(InvalidRequest):
        digest_off(session, "another secret of thirty-two chars", token)
    with pytest.raises(InvalidRequest):
        digest_off(session, SECRET, token[:-2] + "xx")


def test_a_purpose_the_grants_do_not_cover_is_named_in_the_reader_s_language(
    session, make_subject, babel_app
):
    from flask_babel import force_locale

    from consent_service.notices.service import text_of

    subject = make_subject(language="zh-CN")
    labels = {"en": "Advertising and marketing", "zh": "广告与营销"}
    attempt_blocked(
        session,
        subject.id,
        Outcome.NOT_COVERED,
        "Acme Studio",
        "face_swap",
        utcnow(),
        "p" * 32,
        1,
        purpose=labels,
    )
    attempt_blocked(  # the purpose names only a not_covered outcome
        session,
        subject.id,
        Outcome.PROTECTED,
        "Acme Studio",
        "face_swap",
        utcnow(),
        "q" * 32,
        1,
        purpose=labels,
    )
    covered, protected = session.exec(
        select(SubjectNotice)
        .where(SubjectNotice.subject_id == subject.id)
        .order_by(SubjectNotice.id)
    ).all()
    assert (covered.message_key, protected.message_key) == (
        "attempt.not_covered_purpose",
        "attempt.protected",
    )
    assert "(face swap) for Advertising and marketing. None of your grants" in covered.message
    with force_locale("zh_CN"):
        chinese = text_of(covered)
    assert "广告与营销" in chinese and "换脸" in chinese and "Advertising" not in chinese
    with force_locale("en"):
        assert text_of(covered) == covered.message
