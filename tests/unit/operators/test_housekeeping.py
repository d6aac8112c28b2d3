"""Periodic housekeeping as plain functions: grant expiry writes a new version, media past
retention are destroyed with one audit entry each (hash only), disputes move templates."""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import timedelta

import numpy as np
import pytest
from sqlmodel import select

from consent_service import db
from consent_service.audit.models import AuditEvent
from consent_service.audit.service import verify
from consent_service.biometrics.disputes import open_dispute
from consent_service.biometrics.models import (
    BiometricTemplate,
    Enrollment,
    EnrollmentDispute,
    GalleryVersion,
)
from consent_service.biometrics.service import open_template
from consent_service.consent.models import ConsentGrant
from consent_service.crypto import Envelope, StaticKeys
from consent_service.errors import Conflict
from consent_service.notices.models import SubjectNotice
from consent_service.operators import service
from consent_service.storage import LocalMediaStore
from consent_service.timeutil import utcnow

KEY = StaticKeys.single(b"k" * 32)


def test_grants_past_their_end_get_an_expired_version(session, factories, reopen):
    subject = factories.SubjectFactory()
    now = utcnow()
    ended = factories.ConsentGrantFactory(subject=subject, valid_until=now - timedelta(minutes=1))
    running = factories.ConsentGrantFactory(subject=subject, valid_until=now + timedelta(days=1))
    open_ended = factories.ConsentGrantFactory(subject=subject, valid_until=None)
    session.commit()

    assert service.expire_grants(session, KEY, now) == 1
    session.commit()
    assert service.expire_grants(session, KEY, now) == 0  # idempotent: the latest is expired

    s = reopen()
    versions = s.exec(select(ConsentGrant).where(ConsentGrant.grant_id == ended.grant_id)).all()
    assert [(v.version, v.status) for v in sorted(versions, key=lambda v: v.version)] == [
        (1, "active"),
        (2, "expired"),
    ]
    for other in (running, open_ended):
        rows = s.exec(select(ConsentGrant).where(ConsentGrant.grant_id == other.grant_id)).all()
        assert [r.status for r in rows] == ["active"]
    events = s.exec(select(AuditEvent).where(AuditEvent.event_type == "consent.expired")).all()
    assert [e.payload["grant_id"] for e in events] == [ended.grant_id]
    assert verify(s, KEY).ok


def test_media_past_retention_are_purged_with_their_hash_audited(session, tmp_path):
    store = LocalMediaStore(tmp_path / "media", Envelope(secrets.token_bytes(32)))
    old, fresh = store.put(b"old upload"), store.put(b"fresh upload")
    long_ago = (utcnow() - timedelta(days=2)).timestamp()
    os.utime(store.root / old, (long_ago, long_ago))

    keys = store.stale(utcnow() - timedelta(days=1))
    assert keys == [old]
    assert service.purge_media(session, KEY, store, keys) == [old]
    assert sorted(p.name for p in store.root.iterdir()) == sorted([old, fresh])  # not yet
    db.finish(session)  # deleted once the audit entries are committed

    assert sorted(p.name for p in store.root.iterdir()) == [fresh]
    (event,) = session.exec(select(AuditEvent).where(AuditEvent.event_type == "media.purged"))
    assert event.payload == {"key": old, "sha256": hashlib.sha256(b"old upload").hexdigest()}
    assert b"old upload" not in repr(event.payload).encode()


@pytest.mark.parametrize(
    ("resolution", "holder_left", "claimant_got", "enrollment_status"),
    [
        (service.Resolution.AWARD_CLAIMANT, 0, 2, "completed"),
        (service.Resolution.KEEP_HOLDER, 1, 0, "failed"),
        (service.Resolution.REJECT_BOTH, 0, 0, "failed"),
    ],
)
def test_resolving_a_dispute_applies_the_outcome(
    session,
    factories,
    envelope,
    reopen,
    resolution,
    holder_left,
    claimant_got,
    enrollment_status,
):
    holder, claimant = factories.SubjectFactory(), factories.SubjectFactory()
    factories.BiometricTemplateFactory(subject=holder, sealed=(envelope, np.ones(128)))
    enrollment = factories.EnrollmentFactory(subject=claimant, status="disputed")
    vectors = [np.full(128, 0.5), np.full(128, 0.25)]
    dispute = open_dispute(
        session,
        envelope,
        KEY,
        enrollment_id=enrollment.id,
        modality="face",
        model="m",
        claimant_subject_id=claimant.id,
        holder_subject_id=holder.id,
        vectors=vectors,
    )
    session.commit()
    assert session.exec(select(BiometricTemplate)).all()[0].subject_id == holder.id

    service.resolve_dispute(session, envelope, KEY, "operator:1", dispute.id, resolution)
    session.commit()
    with pytest.raises(Conflict):
        service.resolve_dispute(session, envelope, KEY, "operator:1", dispute.id, resolution)

    s = reopen()
    templates = s.exec(select(BiometricTemplate)).all()
    assert len([t for t in templates if t.subject_id == holder.id]) == holder_left
    mine = [t for t in templates if t.subject_id == claimant.id]
    assert len(mine) == claimant_got
    if mine:
        got = sorted(float(open_template(envelope, t)[0]) for t in mine)
        assert got == [0.25, 0.5]
    row = s.get(EnrollmentDispute, dispute.id)
    assert row.status == resolution.value and row.ciphertext == b""
    assert s.get(Enrollment, enrollment.id).status == enrollment_status
    told = {n.subject_id for n in s.exec(select(SubjectNotice)) if n.kind == "dispute.resolved"}
    assert told == {holder.id, claimant.id}
    if holder_left != 1 or claimant_got:
        assert s.get(GalleryVersion, "face") is not None  # workers reload their gallery
    assert verify(s, KEY).ok


class _Mailbox:
    def __init__(self, fail_for: str = ""):
        self.sent: list = []
        self.fail_for = fail_for

    def send(self, message) -> None:
        if message["To"] == self.fail_for:
            raise OSError("mail server down")
        self.sent.append(message)


def test_notices_are_mailed_once_and_failures_retried(session, make_subject, reopen, babel_app):
    from consent_service.accounts.models import User
    from consent_service.notices.service import mail_notices, notify

    a, b = make_subject(language="en"), make_subject(language="en")
    notify(session, a.id, "dispute.opened", "dispute.opened.claimant", modality="face")
    notify(session, b.id, "dispute.opened", "dispute.opened.holder", modality="face")
    session.commit()
    b_address = session.get(User, b.user_id).email

    down = _Mailbox(fail_for=b_address)
    assert mail_notices(session, down, "ops@example.org") == 1
    session.commit()
    assert [m["To"] for m in down.sent] == [session.get(User, a.user_id).email]
    assert "The face you enrolled matches another account" in down.sent[0].get_content()

    up = _Mailbox()
    assert mail_notices(session, up, "ops@example.org") == 1  # only the one that failed
    session.commit()
    assert [m["To"] for m in up.sent] == [b_address]
    assert mail_notices(session, up, "ops@example.org") == 0
    assert all(n.mailed_at for n in reopen().exec(select(SubjectNotice)))


def test_notices_are_mailed_in_each_readers_language(session, make_subject, babel_app):
    from consent_service.notices.service import mail_notices, notify

    people = {
        "zh-CN": make_subject(language="zh-CN"),
        "en": make_subject(language="en"),
        None: make_subject(),  # an account without a language: both, each complete
    }
    for subject in people.values():
        notify(session, subject.id, "dispute.resolved", _told_key("holder"), modality="voice")
    session.commit()
    box = _Mailbox()
    assert mail_notices(session, box, "ops@example.org") == 3
    zh, en, both = box.sent
    chinese = "运营人员已处理关于您的声音的争议：它已判归另一个账户，您的声音模板已被删除。"
    english = "An operator resolved the dispute about your voice: it was awarded to the other"
    assert zh["Content-Language"] == "zh-CN" and zh["Subject"] == "关于您的录入：运营人员已作出决定"
    assert chinese in zh.get_content() and "An operator" not in zh.get_content()
    assert "“我的同意”页面" in zh.get_content()
    assert en["Content-Language"] == "en"
    assert english in en.get_content() and "运营人员" not in en.get_content()
    assert both["Content-Language"] == "zh-CN, en"
    assert both["Subject"] == (
        "关于您的录入：运营人员已作出决定 / About your enrollment: an operator decided"
    )
    body = both.get_content()
    assert body.index(chinese) < body.index(english)
    assert "This notice is also on your dashboard." in body


def _told_key(who: str) -> str:
    return f"dispute.resolved.{service.Resolution.AWARD_CLAIMANT.value}.{who}"


def test_a_notice_keeps_its_english_text_and_shows_in_the_readers_language(
    session, make_subject, babel_app
):
    from flask_babel import force_locale

    from consent_service.notices import service as notices
    from consent_service.notices.service import notify

    subject = make_subject()
    notify(session, subject.id, "dispute.opened", "dispute.opened.claimant", modality="face")
    # A row from before message keys: its stored English is all there is.
    session.add(SubjectNotice(subject_id=subject.id, kind="dispute.opened", message="Old words."))
    session.commit()
    new, old = session.exec(select(SubjectNotice).order_by(SubjectNotice.id)).all()
    assert new.message.startswith("The face you enrolled matches another account.")
    assert (new.message_key, new.params) == ("dispute.opened.claimant", {"modality": "face"})
    with force_locale("zh_CN"):
        assert notices.text_of(new).startswith("您录入的人脸与另一个账户的相符。")
        assert notices.text_of(old) == "Old words."
    with force_locale("en"):
        assert notices.text_of(new) == new.message
    with pytest.raises(ValueError):
        notify(session, subject.id, "dispute.opened", "no.such.notice")


def test_deleting_the_claimant_destroys_the_held_vectors(session, factories, envelope):
    from consent_service.biometrics.disputes import withdraw_claims

    holder, claimant = factories.SubjectFactory(), factories.SubjectFactory()
    enrollment = factories.EnrollmentFactory(subject=claimant, status="disputed")
    dispute = open_dispute(
        session,
        envelope,
        KEY,
        enrollment_id=enrollment.id,
        modality="face",
        model="m",
        claimant_subject_id=claimant.id,
        holder_subject_id=holder.id,
        vectors=[np.zeros(128)],
    )
    assert withdraw_claims(session, holder.id) == 0  # the holder has no claim of its own
    assert withdraw_claims(session, claimant.id) == 1
    assert (dispute.status, dispute.ciphertext, enrollment.status) == ("withdrawn", b"", "failed")
