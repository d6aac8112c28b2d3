"""Managed subjects: a guardian adds a child under 14, acts for it, and the evidence of every
consent given for the child names the guardian. Plain functions of a session; the caller commits.

A child who turns 14 is not handed over automatically: the guardian keeps managing the subject
until an operator transfers it to the child's own account."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, col, select

from consent_service.accounts.models import Guardianship, Subject, User
from consent_service.accounts.service import guardian_reference, guardianship_of, subject_of
from consent_service.audit import service as audit
from consent_service.crypto import KeySource
from consent_service.errors import N_, InvalidRequest
from consent_service.rows import row_id
from consent_service.timeutil import utcnow

# PIPL Art. 31: the personal information of a minor under 14 needs a guardian's consent.
CHILD_AGE_LIMIT = 14
# What a guardian may declare to be; the words for each are in i18n/labels.py.
RELATIONSHIPS = ("parent", "legal_guardian")
# Marked for extraction (the form shows it translated); stored in English as the record.
DECLARATION = N_(
    "I am this child's parent or legal guardian, the child is under 14, and I give and withdraw "
    "consent for the child's face and voice on the child's behalf."
)


def age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def add_child(
    session: Session,
    audit_key: KeySource,
    guardian: User,
    display_name: str,
    date_of_birth: date,
    relationship: str,
    declared: bool,
    today: date | None = None,
) -> Subject:
    """Create a managed subject for a child under 14, acted for by `guardian`'s account."""
    today = today or utcnow().date()
    name = (display_name or "").strip()
    if not name:
        raise InvalidRequest("Enter the child's name.")
    if relationship not in RELATIONSHIPS:
        raise InvalidRequest("Choose how you are related to the child.")
    if date_of_birth > today:
        raise InvalidRequest("The date of birth cannot be in the future.")
    if age_on(date_of_birth, today) >= CHILD_AGE_LIMIT:
        raise InvalidRequest(
            "Only children under %(age)d are managed by a guardian; "
            "an older person signs up with an account of their own.",
            age=CHILD_AGE_LIMIT,
        )
    if not declared:
        raise InvalidRequest("Confirm the guardian's declaration to add the child.")
    child = Subject(user_id=row_id(guardian), display_name=name[:200])
    session.add(child)
    session.flush()
    session.add(
        Guardianship(
            subject_id=row_id(child),
            guardian_user_id=row_id(guardian),
            relationship=relationship,
            date_of_birth=date_of_birth,
            declaration=DECLARATION,
        )
    )
    session.flush()
    audit.append(
        session,
        audit_key,
        "guardian.child_added",
        f"user:{guardian.id}",
        {"guardian": guardian_reference(session, guardian), "relationship": relationship},
        subject_id=child.id,
    )
    return child


def children_of(session: Session, guardian: User) -> list[Subject]:
    return list(
        session.exec(
            select(Subject)
            .join(Guardianship, col(Guardianship.subject_id) == Subject.id)
            .where(
                Guardianship.guardian_user_id == guardian.id,
                col(Guardianship.ended_at).is_(None),
            )
            .order_by(col(Subject.id))
        )
    )


def managed_subjects(session: Session, user: User) -> list[Subject]:
    """Every subject `user` may act for: their own first, then the children they manage."""
    return [subject_of(session, user), *children_of(session, user)]


def end_guardianship(session: Session, subject_id: int) -> None:
    """The child's subject was erased: the guardian no longer manages it (no-op for adults)."""
    link = guardianship_of(session, subject_id)
    if link is not None and link.ended_at is None:
        link.ended_at = utcnow()
        session.add(link)
