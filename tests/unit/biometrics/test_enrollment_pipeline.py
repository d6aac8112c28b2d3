"""Enrollment through its three steps (claim, analyse, record) as its task runs them, with a
stand-in face finder: templates, each reason for a failure, a dispute, the media destroyed
after the commit, and a duplicate delivery. No worker, no dlib."""

from __future__ import annotations

import pytest
from sqlmodel import select

from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.audit.models import AuditEvent
from consent_service.biometrics import enrollment
from consent_service.biometrics.live_models import LiveChallenge
from consent_service.biometrics.models import BiometricTemplate, Enrollment, EnrollmentDispute
from consent_service.biometrics.service import (
    ENROLL_TASKS,
    face_enrollment,
    start_face_enrollment,
)
from consent_service.biometrics.tasks import enroll
from consent_service.crypto import StaticKeys
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Modality
from tests.fakes import vector

AUDIT_KEY = StaticKeys.single(b"a" * 32)
MAX_ATTEMPTS = 3


@pytest.fixture(autouse=True)
def units(worker_context):
    return worker_context


def _subject(email: str) -> int:
    with db.unit_of_work() as s:
        user = User(email=email, password_hash="-", email_verified_at=utcnow())
        s.add(user)
        s.flush()
        subject = Subject(user_id=user.id)
        s.add(subject)
        s.flush()
        assert subject.id is not None
        return subject.id


def _start(store, subject_id: int, *photos: bytes) -> str:
    with db.unit_of_work() as s:
        return start_face_enrollment(s, store, subject_id, list(photos), 5).id


def _run(enrollment_id, store, matching, envelope) -> str:
    return enroll(
        enrollment_id,
        store,
        face_enrollment(matching),
        envelope,
        AUDIT_KEY,
        MAX_ATTEMPTS,
    )


def _row(enrollment_id: str) -> Enrollment:
    with db.unit_of_work() as s:
        row = s.get(Enrollment, enrollment_id)
        assert row is not None
        return row


def _stored(store) -> list[str]:
    return sorted(p.name for p in store.root.iterdir()) if store.root.is_dir() else []


def _templates(subject_id: int) -> int:
    with db.unit_of_work() as s:
        return len(
            s.exec(
                select(BiometricTemplate).where(BiometricTemplate.subject_id == subject_id)
            ).all()
        )


def test_photos_of_one_person_become_templates_and_are_destroyed(
    faces, store, matching, envelope, units
):
    me = _subject("me@example.org")
    eid = _start(store, me, faces.picture(vector(1)), faces.picture(vector(1)))
    assert len(_stored(store)) == 2
    assert _run(eid, store, matching, envelope) == "completed"
    row = _row(eid)
    assert (row.status, row.attempts, row.template_count, row.media_keys) == ("completed", 1, 2, [])
    assert _templates(me) == 2 and _stored(store) == []
    with db.unit_of_work() as s:
        events = [e.event_type for e in s.exec(select(AuditEvent).order_by(AuditEvent.seq))]
    assert events[-2:] == ["biometrics.enrolled", "media.destroyed"]
    # A duplicate task message finds it ended: nothing counted, nothing made.
    assert _run(eid, store, matching, envelope) == "completed"
    assert _row(eid).attempts == 1 and _templates(me) == 2


def test_an_uploaded_enrollment_gives_the_subject_uploaded_and_lowers_a_higher_level(
    faces, store, matching, envelope
):
    me = _subject("me@example.org")
    eid = _start(store, me, faces.picture(vector(1)))
    assert _run(eid, store, matching, envelope) == "completed"
    assert _row(eid).assurance == "uploaded"
    with db.unit_of_work() as s:
        assert s.get(Subject, me).assurance == "uploaded"
        # As if a live consent session had enrolled it: then photos are added.
        s.exec(select(Enrollment).where(Enrollment.id == eid)).one().assurance = "live"
        s.get(Subject, me).assurance = "live"
    more = _start(store, me, faces.picture(vector(1)))
    assert _run(more, store, matching, envelope) == "completed"
    with db.unit_of_work() as s:
        assert s.get(Subject, me).assurance == "uploaded"  # the weakest enrolled level
        changes = [
            e.payload
            for e in s.exec(
                select(AuditEvent).where(AuditEvent.event_type == "subject.assurance_changed")
            )
        ]
    assert [(c["from"], c["to"], c["reason"]) for c in changes] == [
        (None, "uploaded", "enrollment_completed"),
        ("live", "uploaded", "enrollment_completed"),
    ]
    assert changes[1]["enrollment_id"] == more


@pytest.mark.parametrize(
    ("photos", "error"),
    [
        (lambda f: [f.picture()], "Photo 1: no face was found."),
        (lambda f: [f.picture(vector(1), vector(2))], "Photo 1 shows 2 faces"),
        (lambda f: [b"hello"], "Photo 1: The file is not an image we can read"),
        (
            lambda f: [f.picture(vector(1)), f.picture(vector(2))],
            "The photos do not all show the same person.",
        ),
    ],
)
def test_each_unusable_upload_fails_with_its_reason(
    faces, store, matching, envelope, photos, error
):
    me = _subject("me@example.org")
    eid = _start(store, me, *photos(faces))
    assert _run(eid, store, matching, envelope) == "failed"
    row = _row(eid)
    assert row.error.startswith(error) and row.error_params
    assert _templates(me) == 0 and _stored(store) == []


def test_media_gone_from_the_store_fail_the_enrollment(faces, store, matching, envelope):
    eid = _start(store, _subject("me@example.org"), faces.picture(vector(1)))
    for key in _stored(store):
        store.delete(key)
    assert _run(eid, store, matching, envelope) == "failed"
    assert "no longer available" in _row(eid).error


def test_media_that_failed_too_many_times_are_not_read_again(faces, store, matching, envelope):
    eid = _start(store, _subject("me@example.org"), faces.picture(vector(1)))
    with db.unit_of_work() as s:
        s.get(Enrollment, eid).attempts = MAX_ATTEMPTS
    assert _run(eid, store, matching, envelope) == "failed"
    assert _row(eid).error == f"The photos could not be processed after {MAX_ATTEMPTS} attempts."
    assert _stored(store) == []


def test_a_face_another_account_enrolled_opens_a_dispute(faces, store, matching, envelope):
    holder = _subject("holder@example.org")
    assert _run(_start(store, holder, faces.picture(vector(1))), store, matching, envelope) == (
        "completed"
    )
    claimant = _subject("claimant@example.org")
    eid = _start(store, claimant, faces.picture(vector(1)))
    assert _run(eid, store, matching, envelope) == "disputed"
    assert _templates(claimant) == 0 and _stored(store) == []
    with db.unit_of_work() as s:
        dispute = s.exec(select(EnrollmentDispute)).one()
    assert (dispute.claimant_subject_id, dispute.holder_subject_id) == (claimant, holder)


def test_media_stay_until_the_outcome_is_committed(faces, store, matching, envelope):
    eid = _start(store, _subject("me@example.org"), faces.picture(vector(1)))
    with db.unit_of_work() as s:
        claimed = enrollment.claim(s, eid)
    assert isinstance(claimed, enrollment.Claimed)
    kind = face_enrollment(matching)
    extracted = enrollment.analyse(
        enrollment.load(store, claimed.keys), kind, claimed.attempts, MAX_ATTEMPTS
    )
    assert len(extracted.vectors) == 1 and extracted.error is None
    with pytest.raises(RuntimeError), db.unit_of_work() as s:
        enrollment.record(s, claimed, extracted, kind, envelope, AUDIT_KEY, store)
        raise RuntimeError("crash before the commit")
    assert len(_stored(store)) == 1 and _row(eid).status == "pending"
    with db.unit_of_work() as s:
        enrollment.record(s, claimed, extracted, kind, envelope, AUDIT_KEY, store)
    assert _stored(store) == [] and _row(eid).status == "completed"


def test_an_enrollment_is_claimed_with_its_media_and_its_task_registered(faces, store, units):
    me = _subject("me@example.org")
    eid = _start(store, me, faces.picture(vector(1)), faces.picture(vector(1)))
    assert units[-1] == (ENROLL_TASKS[Modality.FACE], [eid])  # sent once committed
    with db.unit_of_work() as s:
        claimed = enrollment.claim(s, eid)
    assert isinstance(claimed, enrollment.Claimed)
    assert (claimed.subject_id, claimed.attempts, len(claimed.keys)) == (me, 1, 2)


def test_the_retired_camera_pages_enrollments_stay_uploaded(faces, store, matching, envelope):
    # One sent by the retired camera page just before it went: its three pictures are
    # finished like photos, at the level that page always gave; its challenge stays on record.
    me = _subject("me@example.org")
    eid = _start(store, me, *(faces.picture(vector(1)) for _ in range(3)))
    with db.unit_of_work() as s:
        s.add(
            LiveChallenge(
                subject_id=me,
                steps=["front", "left", "right"],
                expires_at=utcnow(),
                used_at=utcnow(),
                enrollment_id=eid,
            )
        )
    assert _run(eid, store, matching, envelope) == "completed"
    assert (_row(eid).assurance, _templates(me)) == ("uploaded", 3)
    with db.unit_of_work() as s:
        assert s.get(Subject, me).assurance == "uploaded"
        assert s.exec(select(LiveChallenge)).one().enrollment_id == eid
