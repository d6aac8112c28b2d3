"""An operator's import of a person (`consent-service subjects import`, the demo, end-to-end
tests): the account, created if missing, and a pending face or voice enrollment whose task is
registered (by `new_enrollment`) for the commit of the caller's unit of work."""

from __future__ import annotations

import secrets

from sqlmodel import Session

from consent_service.accounts import service as accounts
from consent_service.biometrics.models import Enrollment
from consent_service.biometrics.service import start_face_enrollment
from consent_service.biometrics.voice_service import start_voice_enrollment
from consent_service.rows import row_id
from consent_service.storage import MediaStore


def _subject_of(session: Session, email: str, password: str | None) -> tuple[int, bool]:
    """The subject of the account for `email` (created, with a random password unless one is
    given, if missing), and whether it was created. An account the import creates is verified:
    the operator vouches for the address (its owner sets a password by the reset link). An
    existing account must have verified its address itself, or its enrollment is refused."""
    user = accounts.find_user(session, email)
    created = user is None
    if user is None:
        user = accounts.sign_up(session, email, password or secrets.token_urlsafe(16))
        accounts.mark_verified(user)
    return row_id(accounts.subject_of(session, user)), created


def import_face(
    session: Session,
    store: MediaStore,
    email: str,
    photos: list[bytes],
    max_photos: int,
    password: str | None = None,
) -> tuple[Enrollment, bool]:
    """The account and a pending face enrollment of the photos, its `biometrics.enroll_face`
    task registered. Returns (enrollment, account_created)."""
    subject_id, created = _subject_of(session, email, password)
    return start_face_enrollment(session, store, subject_id, photos, max_photos), created


def import_voice(
    session: Session, store: MediaStore, email: str, recording: bytes, password: str | None = None
) -> tuple[Enrollment, bool]:
    """The account and a pending voice enrollment of the recording, its `biometrics.enroll_voice`
    task registered. Returns (enrollment, account_created)."""
    subject_id, created = _subject_of(session, email, password)
    return start_voice_enrollment(session, store, subject_id, recording), created
