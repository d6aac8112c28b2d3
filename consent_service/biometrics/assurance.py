"""A subject's assurance level from its enrollments: the level of the **weakest** enrollment
whose templates are in the gallery. The gate matches a face or voice against every template a
subject has, so one uploaded photo (which anyone could have taken from the web) makes every
match with that subject only as good as an upload; a level is earned for the whole subject only
when everything enrolled earned it. Settled whenever templates are added or removed."""

from __future__ import annotations

from sqlmodel import Session, col, select

from consent_service.accounts.assurance import set_level
from consent_service.accounts.models import Subject
from consent_service.biometrics.models import BiometricTemplate, Enrollment
from consent_service.crypto import KeySource
from consent_service.vocabulary import Assurance


def weakest_enrolled(session: Session, subject_id: int) -> Assurance | None:
    """The lowest level among the enrollments whose templates the subject has now (a template
    without an enrollment counts as `uploaded`); None when nothing is enrolled."""
    rows = session.exec(
        select(BiometricTemplate.enrollment_id, Enrollment.assurance)
        .outerjoin(Enrollment, col(Enrollment.id) == BiometricTemplate.enrollment_id)
        .where(BiometricTemplate.subject_id == subject_id)
    ).all()
    if not rows:
        return None
    levels = [Assurance(level) if level else Assurance.UPLOADED for _enrollment, level in rows]
    return min(levels, key=lambda a: a.rank)


def settle_level(
    session: Session,
    audit_key: KeySource,
    subject_id: int,
    *,
    actor: str,
    reason: str,
    evidence: dict | None = None,
) -> Assurance | None:
    """Record the subject's level as its enrollments now give it (audited when it changes, by
    `accounts.assurance.set_level`). Call after adding or removing templates, in the same
    transaction (flushed first)."""
    session.flush()
    subject = session.get(Subject, subject_id)
    if subject is None:
        return None
    level = weakest_enrolled(session, subject_id)
    set_level(session, audit_key, subject, level, actor=actor, reason=reason, evidence=evidence)
    return level
