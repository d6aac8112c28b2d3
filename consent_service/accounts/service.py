"""Sign-up and sign-in, and which subjects an account acts for (its own, or a child it manages as
guardian). Answers never reveal whether an e-mail address has an account."""

from __future__ import annotations

import re
from collections.abc import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import update
from sqlmodel import Session, col, select

from consent_service.accounts.models import Guardianship, Subject, User
from consent_service.errors import AccountExists, InvalidRequest, NotFound
from consent_service.timeutil import as_utc, new_id

_hasher = PasswordHasher()  # argon2id with the library's current parameters
# Verifying against this when the account is unknown keeps both answers equally slow.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 10


def normalize_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise InvalidRequest("Enter a valid e-mail address.")
    return email


def check_password_rules(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise InvalidRequest("Choose a password of at least %(num)d characters.", num=MIN_PASSWORD)


def find_user(session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == normalize_email(email))).first()


def sign_up(
    session: Session,
    email: str,
    password: str,
    display_name: str = "",
    language: str | None = None,
) -> User:
    """Create an account and the subject it protects. `language` (`en`, `zh-CN`): the one the
    person signed up in, which their pages and mails then use until they switch."""
    email = normalize_email(email)
    check_password_rules(password)
    if find_user(session, email) is not None:
        raise AccountExists("An account with this e-mail address already exists.")
    user = User(email=email, password_hash=_hasher.hash(password), language=language)
    session.add(user)
    session.flush()
    session.add(Subject(user_id=user.id, display_name=display_name or email.split("@")[0]))
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    try:
        user = find_user(session, email)
    except InvalidRequest:
        user = None
    if not verify_password(user.password_hash if user else _DUMMY_HASH, password):
        return None
    return user if user is not None and user.is_active else None


def verify_password(password_hash: str, password: str) -> bool:
    """True if the password matches; never for a deleted account's unusable hash."""
    try:
        return _hasher.verify(password_hash, password or "")
    except (VerificationError, InvalidHashError):
        return False


def end_all_sessions(user: User) -> None:
    user.session_token = new_id()


def subject_of(session: Session, user: User) -> Subject:
    # The account's own subject: not one of the children it manages as a guardian.
    managed = select(Guardianship.subject_id)
    subject = session.exec(
        select(Subject).where(Subject.user_id == user.id, Subject.id.not_in(managed))  # type: ignore[union-attr]
    ).first()
    if subject is None:  # every account gets one at sign-up
        raise LookupError(f"user {user.id} has no subject")
    return subject


def load_user(session: Session, user_id: str) -> User | None:
    """Flask-Login's loader: the id carries the session token, so rotated tokens log out."""
    uid, _, token = (user_id or "").partition(":")
    if not uid.isdigit():
        return None
    user = session.get(User, int(uid))
    if user is None or not user.is_active or user.session_token != token:
        return None
    return user


def guardianship_of(session: Session, subject_id: int) -> Guardianship | None:
    return session.exec(select(Guardianship).where(Guardianship.subject_id == subject_id)).first()


def acting_subject(session: Session, user: User, selected: int | None) -> Subject:
    """The subject `user` acts for: their own (`selected` None), or a child they manage.
    NotFound for anything else, so another guardian's child looks like no child at all."""
    if selected is None:
        return subject_of(session, user)
    link = guardianship_of(session, selected)
    if link is None or link.guardian_user_id != user.id or link.ended_at is not None:
        raise NotFound("No such child.")
    subject = session.get(Subject, selected)
    if subject is None:
        raise NotFound("No such child.")
    return subject


def guardian_reference(session: Session, guardian: User) -> str:
    """The guardian as named in evidence and receipts: their own pseudonymous subject id."""
    return subject_of(session, guardian).public_id


def guardian_evidence(session: Session, subject: Subject) -> dict | None:
    """The `guardian` of a grant's evidence when `subject` is managed; None for an adult."""
    link = guardianship_of(session, subject.id)  # type: ignore[arg-type]
    if link is None:
        return None
    guardian = session.get(User, link.guardian_user_id)
    assert guardian is not None  # foreign key
    return {
        "reference": guardian_reference(session, guardian),
        "relationship": link.relationship,
        "declared_at": as_utc(link.declared_at).isoformat(),
    }


def lock_subjects(session: Session, subject_ids: Iterable[int]) -> dict[int, Subject]:
    """Lock these subjects' rows until the caller's transaction ends and return them as they are
    now (re-read, whatever the session held). The lock that orders a decision's reading of
    grants against revocation and protect-only: whoever locks second waits, then reads what the
    first committed. Rows are locked in id order, so two lockers never deadlock.

    SQLite has no row locks: there the database's write lock is taken (an UPDATE that changes
    nothing), so no other writer can commit before this transaction does, and what it reads
    next is the latest committed state."""
    ids = sorted(set(subject_ids))
    if not ids:
        return {}
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(Subject)
            .where(col(Subject.id).in_(ids))
            .values(protect_only=Subject.protect_only)
            .execution_options(synchronize_session=False)
        )
    rows = session.exec(
        select(Subject)
        .where(col(Subject.id).in_(ids))
        .order_by(col(Subject.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {s.id: s for s in rows if s.id is not None}
