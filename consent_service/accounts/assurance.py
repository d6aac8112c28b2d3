"""A subject's assurance level (vocabulary.Assurance): set when an enrollment succeeds and when
an operator reviews the live recording behind it, each change audited."""

from __future__ import annotations

from sqlmodel import Session

from consent_service.accounts.models import Subject
from consent_service.audit import service as audit
from consent_service.vocabulary import Assurance


def level_of(subject: Subject) -> Assurance | None:
    return Assurance(subject.assurance) if subject.assurance else None


def set_level(
    session: Session,
    audit_key: bytes,
    subject: Subject,
    level: Assurance | None,
    *,
    actor: str,
    reason: str,
    evidence: dict | None = None,
) -> None:
    """Record `level` for `subject` (raising or lowering it) and audit the change with its
    reason ("live_enrollment", "operator_review", ...) and evidence (ids, scores; never
    biometrics). None: nothing enrolled any more. No change, no entry."""
    before, after = subject.assurance, level.value if level is not None else None
    if before == after:
        return
    subject.assurance = after
    session.add(subject)
    session.flush()
    audit.append(
        session,
        audit_key,
        "subject.assurance_changed",
        actor,
        {"from": before, "to": after, "reason": reason, **(evidence or {})},
        subject_id=subject.id,
    )
