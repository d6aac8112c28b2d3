"""A subject's assurance level is that of its weakest enrollment whose templates are in the
gallery (biometrics/assurance.py): added templates can lower it, removed ones raise it back."""

from __future__ import annotations

from sqlmodel import select

from consent_service.accounts.models import Subject
from consent_service.audit.models import AuditEvent
from consent_service.biometrics.assurance import settle_level, weakest_enrolled
from consent_service.biometrics.models import BiometricTemplate
from consent_service.crypto import StaticKeys
from consent_service.vocabulary import Assurance

AUDIT_KEY = StaticKeys.single(b"a" * 32)


def _enrolled(factories, subject, level: str, modality: str = "face"):
    enrollment = factories.EnrollmentFactory(
        subject=subject, status="completed", modality=modality, assurance=level
    )
    factories.BiometricTemplateFactory(
        subject=subject, enrollment_id=enrollment.id, modality=modality
    )
    return enrollment


def test_nothing_enrolled_has_no_level(session, factories):
    subject = factories.SubjectFactory()
    assert weakest_enrolled(session, subject.id) is None
    factories.EnrollmentFactory(subject=subject, status="failed")  # made no template
    assert weakest_enrolled(session, subject.id) is None


def test_the_weakest_enrollment_with_templates_sets_the_level(session, factories):
    subject = factories.SubjectFactory()
    _enrolled(factories, subject, "reviewed")
    assert weakest_enrolled(session, subject.id) is Assurance.REVIEWED
    _enrolled(factories, subject, "live", modality="voice")  # any modality counts
    assert weakest_enrolled(session, subject.id) is Assurance.LIVE
    _enrolled(factories, subject, "uploaded")
    assert weakest_enrolled(session, subject.id) is Assurance.UPLOADED
    # A template without an enrollment (none such is made today) counts as an upload.
    other = factories.SubjectFactory()
    factories.BiometricTemplateFactory(subject=other)
    assert weakest_enrolled(session, other.id) is Assurance.UPLOADED


def test_settling_records_and_audits_each_change_only(session, factories):
    subject = factories.SubjectFactory()
    live = _enrolled(factories, subject, "live")
    uploaded = _enrolled(factories, subject, "uploaded")
    assert settle_level(session, AUDIT_KEY, subject.id, actor="t", reason="r") is Assurance.UPLOADED
    assert settle_level(session, AUDIT_KEY, subject.id, actor="t", reason="r") is Assurance.UPLOADED
    # The uploaded templates go (e.g. a dispute lost): the live enrollment's level is back.
    for t in session.exec(
        select(BiometricTemplate).where(BiometricTemplate.enrollment_id == uploaded.id)
    ):
        session.delete(t)
    assert settle_level(session, AUDIT_KEY, subject.id, actor="t", reason="r") is Assurance.LIVE
    for t in session.exec(
        select(BiometricTemplate).where(BiometricTemplate.enrollment_id == live.id)
    ):
        session.delete(t)
    assert settle_level(session, AUDIT_KEY, subject.id, actor="t", reason="r") is None
    assert session.get(Subject, subject.id).assurance is None
    changes = [
        (e.payload["from"], e.payload["to"])
        for e in session.exec(
            select(AuditEvent).where(AuditEvent.event_type == "subject.assurance_changed")
        )
    ]
    assert changes == [(None, "uploaded"), ("uploaded", "live"), ("live", None)]
