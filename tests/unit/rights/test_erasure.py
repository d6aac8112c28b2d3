"""Erasing a subject destroys its pending enrollments' media only once the erasure commits."""

from __future__ import annotations

from consent_service import db
from consent_service.biometrics.models import Enrollment
from consent_service.consent.service import Evidence
from consent_service.crypto import StaticKeys
from consent_service.rights import service as rights
from consent_service.vocabulary import EnrollmentStatus, Modality

AUDIT_KEY = StaticKeys.single(b"k" * 32)


class DictStore:
    def __init__(self):
        self.files: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        key = f"k{len(self.files)}"
        self.files[key] = data
        return key

    def get(self, key: str) -> bytes:
        return self.files[key]

    def delete(self, key: str) -> None:
        self.files.pop(key, None)


def _pending(session, store, subject) -> Enrollment:
    enrollment = Enrollment(
        subject_id=subject.id,
        modality=Modality.FACE.value,
        media_keys=[store.put(b"photo-1"), store.put(b"photo-2")],
    )
    session.add(enrollment)
    session.flush()
    return enrollment


def test_media_of_pending_enrollments_go_only_after_the_commit(session, make_subject):
    store, subject = DictStore(), make_subject()
    enrollment = _pending(session, store, subject)
    db.finish(session)  # the subject and its pending enrollment exist
    evidence = Evidence(actor="test", identity_method="test")

    rights.erase_subject(session, store, AUDIT_KEY, subject, evidence, event=None)
    assert enrollment.status == EnrollmentStatus.FAILED.value and enrollment.media_keys == []
    assert len(store.files) == 2  # registered, not done: the erasure may still roll back
    db.rollback(session)
    assert len(store.files) == 2  # rolled back: the rows still point at the files

    rights.erase_subject(session, store, AUDIT_KEY, subject, evidence, event=None)
    db.finish(session)
    assert store.files == {}
