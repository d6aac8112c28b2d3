"""Rotating a purpose's key. For the template KEK every data key is re-wrapped online, in
batches that each commit with their count, so a crash resumes where it stopped and decisions go
on meanwhile: only the 60-byte wrapped data key of a row changes, never its ciphertext, so the
workers' galleries (decrypted in memory, kept current by the template change log) are untouched
and any process opens a row under either version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, func, select

from consent_service.accounts.models import User
from consent_service.accounts.twofactor import totp_aad
from consent_service.biometrics.disputes import dispute_aad
from consent_service.biometrics.models import BiometricTemplate, EnrollmentDispute
from consent_service.biometrics.service import template_aad
from consent_service.consent_requests.faces import request_aad
from consent_service.consent_requests.models import ConsentRequest
from consent_service.crypto import Envelope
from consent_service.gate.finding_faces import finding_aad
from consent_service.gate.models import FindingFace
from consent_service.keyring import Purpose
from consent_service.keys.models import KeyRotation
from consent_service.timeutil import utcnow
from consent_service.webhooks.models import Webhook
from consent_service.webhooks.service import webhook_aad


@dataclass(frozen=True)
class Sealed:
    """A table whose rows hold a data key wrapped by the template KEK."""

    name: str
    model: Any
    wrapped: str  # the wrapped data key's column (empty or NULL: nothing sealed)
    kek_id: str  # the column naming the KEK version
    aad: Callable[[Any], bytes]  # what the row's envelope is bound to


SEALED: tuple[Sealed, ...] = (
    Sealed(
        "biometric_template",
        BiometricTemplate,
        "wrapped_key",
        "kek_id",
        lambda r: template_aad(r.subject_id, r.id),
    ),
    Sealed(
        "enrollment_dispute",
        EnrollmentDispute,
        "wrapped_key",
        "kek_id",
        lambda r: dispute_aad(r.id),
    ),
    Sealed(
        "finding_face",
        FindingFace,
        "wrapped_key",
        "kek_id",
        lambda r: finding_aad(r.finding_id, r.job_id),
    ),
    Sealed("consent_request", ConsentRequest, "face_wrapped_key", "face_kek_id", request_aad),
    Sealed("webhook", Webhook, "secret_wrapped_key", "secret_kek_id", webhook_aad),
    Sealed("user", User, "totp_key", "totp_kek_id", totp_aad),
)


def open_rotation(session: Session, purpose: Purpose) -> KeyRotation | None:
    """The rotation of `purpose` started and not finished (a crash, or one still running)."""
    return session.exec(
        select(KeyRotation)
        .where(KeyRotation.purpose == purpose.value, col(KeyRotation.finished_at).is_(None))
        .order_by(col(KeyRotation.id).desc())
    ).first()


def start_rotation(session: Session, purpose: Purpose, key_id: str) -> KeyRotation:
    rotation = KeyRotation(purpose=purpose.value, key_id=key_id)
    session.add(rotation)
    session.flush()
    return rotation


def finish_rotation(session: Session, rotation: KeyRotation) -> None:
    rotation.finished_at = utcnow()
    session.add(rotation)
    session.flush()


def rewrap_batch(session: Session, envelope: Envelope, rotation_id: int, size: int = 500) -> int:
    """Move up to `size` rows not yet under the primary KEK to it, in the caller's transaction,
    and add the data keys re-wrapped to the rotation's count. Returns how many rows it moved
    (a row with nothing sealed moves too, by its key id alone): 0 when none is left.

    The rotation row is updated first: on SQLite that takes the database's write lock, so no
    other writer changes a row between its read here and its update; on PostgreSQL the rows are
    read FOR UPDATE (SKIP LOCKED: a row another transaction holds is taken by a later batch)."""
    target = envelope.primary_id
    session.execute(
        update(KeyRotation)
        .where(col(KeyRotation.id) == rotation_id)
        .values(key_id=target)
        .execution_options(synchronize_session=False)
    )
    seen = rewrapped = 0
    for table in SEALED:
        left = size - seen
        if left <= 0:
            break
        rows = session.exec(
            select(table.model)
            .where(getattr(table.model, table.kek_id) != target)
            .limit(left)
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            wrapped = getattr(row, table.wrapped)
            if wrapped:  # an emptied or absent secret has nothing to re-wrap: only its id moves
                new = envelope.rewrap(wrapped, table.aad(row))
                if new is not None:
                    setattr(row, table.wrapped, new)
                    rewrapped += 1
            setattr(row, table.kek_id, target)
            session.add(row)
        seen += len(rows)
    session.flush()
    session.execute(
        update(KeyRotation)
        .where(col(KeyRotation.id) == rotation_id)
        .values(rows_done=KeyRotation.rows_done + rewrapped)
        .execution_options(synchronize_session=False)
    )
    return seen


def kek_versions(session: Session) -> dict[str, dict[str, int]]:
    """Per sealed table, how many rows each template KEK version protects."""
    counts: dict[str, dict[str, int]] = {}
    for table in SEALED:
        column = getattr(table.model, table.kek_id)
        rows = session.exec(select(column, func.count()).group_by(column)).all()
        counts[table.name] = {kid: n for kid, n in rows}
    return counts


@dataclass(frozen=True)
class RotationResult:
    purpose: Purpose
    key_id: str
    rows: int  # records moved to the new version (re-wrapped data keys)
    seconds: float
    resumed: bool  # an unfinished rotation was carried on
