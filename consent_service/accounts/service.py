"""Sign-up and sign-in, verified addresses, passwords (change, mailed reset, invitations), and
which subjects an account acts for (its own, or a child it manages as guardian). Answers never
reveal whether an e-mail address has an account."""

from __future__ import annotations

import re
from collections.abc import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from blinker import Namespace
from sqlalchemy import update
from sqlmodel import Session, col, select

from consent_service.accounts import links
from consent_service.accounts.models import Guardianship, Invitation, Subject, User
from consent_service.crypto import KeySource
from consent_service.errors import AccountExists, EmailNotVerified, InvalidRequest, NotFound
from consent_service.rows import row_id
from consent_service.timeutil import as_utc, new_id, utcnow

_hasher = PasswordHasher()  # argon2id with the library's current parameters
# Verifying against this when the account is unknown keeps both answers equally slow.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 10
# The password of an account made for an invitation until its invitee sets one: not an argon2
# hash, so nothing verifies against it (verify_password answers False).
NO_PASSWORD = "!invited"  # noqa: S105 - a marker, not a password


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
    password_hash = _hasher.hash(password)  # before the look-up: both answers take as long
    if find_user(session, email) is not None:
        raise AccountExists("An account with this e-mail address already exists.")
    user = User(email=email, password_hash=password_hash, language=language)
    session.add(user)
    session.flush()
    session.add(Subject(user_id=row_id(user), display_name=display_name or email.split("@")[0]))
    session.flush()
    return user


def invited_account(session: Session, email: str) -> User:
    """A new account for an invited address, with no password anybody knows (the invitation's
    link sets it) and not verified (setting the password from the mailed link verifies it)."""
    email = normalize_email(email)
    if find_user(session, email) is not None:
        raise AccountExists("An account with this e-mail address already exists.")
    user = User(email=email, password_hash=NO_PASSWORD)
    session.add(user)
    session.flush()
    session.add(Subject(user_id=row_id(user), display_name=email.split("@")[0]))
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


# --- a verified address --------------------------------------------------------------------


def require_verified(user: User | None) -> None:
    """Enrolling, granting, answering a consent request and holding a role need an account that
    proved it holds its address."""
    if user is None or not user.is_verified:
        raise EmailNotVerified(
            "Verify your e-mail address first: open the link we mailed you, or ask for a new one."
        )


def require_verified_subject(session: Session, subject_id: int) -> None:
    """The account acting for the subject (its owner, or a managed child's guardian) is verified."""
    subject = session.get(Subject, subject_id)
    require_verified(session.get(User, subject.user_id) if subject is not None else None)


def mark_verified(user: User) -> None:
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()


def verification_link(secret: str, user: User) -> str:
    """The token of the link that verifies this account's current address."""
    return links.sign(secret, links.VERIFY, {"u": user.id, "e": user.email})


def verify_email(session: Session, secret: str, user: User, token: str, max_age: int) -> None:
    """Open a verification link as the signed-in `user`: only the account it was made for, and
    only for the address it still has (so the address and the password are one person's)."""
    payload = links.load(secret, links.VERIFY, token, max_age)
    if payload.get("u") != user.id or payload.get("e") != user.email:
        raise InvalidRequest("This link was made for another account. Sign in with that one.")
    mark_verified(user)
    session.add(user)
    session.flush()


# --- passwords -----------------------------------------------------------------------------


def set_password(session: Session, user: User, password: str) -> None:
    """A new password ends every session of the account (the Flask-Login id changes)."""
    check_password_rules(password)
    user.password_hash = _hasher.hash(password)
    end_all_sessions(user)
    session.add(user)
    session.flush()


def change_password(session: Session, user: User, current: str, new: str) -> None:
    if not verify_password(user.password_hash, current):
        raise InvalidRequest("Your current password is not right.")
    set_password(session, user, new)


def reset_link(secret: str, user: User) -> str:
    """The token of a password-reset link: it dies once the password changes."""
    stamp = links.password_stamp(user.password_hash)
    return links.sign(secret, links.RESET, {"u": user.id, "p": stamp})


def reset_target(session: Session, secret: str, token: str, max_age: int) -> User:
    """The account a reset link may set the password of (InvalidRequest if none)."""
    payload = links.load(secret, links.RESET, token, max_age)
    user = session.get(User, payload.get("u")) if isinstance(payload.get("u"), int) else None
    if (
        user is None
        or not user.is_active
        or user.email.endswith(".invalid")  # a deleted account keeps no address
        or payload.get("p") != links.password_stamp(user.password_hash)
    ):
        raise InvalidRequest("This link is not valid any more. Ask for a new one.")
    return user


def reset_password(session: Session, secret: str, token: str, max_age: int, password: str) -> User:
    """Set the password from a mailed link; the link proved the mailbox, so the address is
    verified too. Every other session ends."""
    user = reset_target(session, secret, token, max_age)
    set_password(session, user, password)
    mark_verified(user)
    return user


def digest_off_link(secret: str, user: User) -> str:
    """The token of the digest mail's unsubscribe link (one click: it only switches the digest
    off, so it needs no sign-in)."""
    return links.sign(secret, links.DIGEST_OFF, {"u": user.id})


def set_notice_digest(session: Session, user: User, on: bool) -> None:
    """Switch the account's daily digest of attempt notices on or off; the notices stay on the
    dashboard either way."""
    user.notice_digest = on
    session.add(user)
    session.flush()


def digest_off(session: Session, secret: str, token: str) -> User:
    """Open an unsubscribe link: the digest of the account it was made for goes off
    (InvalidRequest for a forged or expired link, or an account that is gone)."""
    payload = links.load(secret, links.DIGEST_OFF, token, links.DIGEST_OFF_MAX_AGE)
    user = session.get(User, payload.get("u")) if isinstance(payload.get("u"), int) else None
    if user is None:
        raise InvalidRequest("This link is not valid any more. Ask for a new one.")
    set_notice_digest(session, user, False)
    return user


def subject_of(session: Session, user: User) -> Subject:
    # The account's own subject: not one of the children it manages as a guardian.
    managed = select(Guardianship.subject_id)
    subject = session.exec(
        select(Subject).where(Subject.user_id == user.id, col(Subject.id).not_in(managed))
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
    link = guardianship_of(session, row_id(subject))
    if link is None:
        return None
    guardian = session.get(User, link.guardian_user_id)
    assert guardian is not None  # foreign key
    return {
        "reference": guardian_reference(session, guardian),
        "relationship": link.relationship,
        "declared_at": as_utc(link.declared_at).isoformat(),
    }


# --- invitations to a role -----------------------------------------------------------------

# Sent (session, invitation=, user=, audit_key=) when an invitation is accepted, in the
# transaction that marks it: the capability owning the role grants it (operators: operator;
# portal: staff) and audits it.
invitation_accepted = Namespace().signal("invitation-accepted")


def invite(
    session: Session,
    email: str,
    role: str,
    provider_id: str | None = None,
    staff_role: str | None = None,
) -> Invitation:
    """Offer a role to an address. A new address gets an account nobody can sign in to until
    the invitation's link sets its password; an existing account keeps its password and gets
    the role only when its verified owner, signed in, accepts."""
    user = find_user(session, email)
    new_account = user is None
    if user is None:
        user = invited_account(session, email)
    if not user.is_active or user.email.endswith(".invalid"):
        raise InvalidRequest("This account was deleted; it cannot be given a role.")
    invitation = Invitation(
        user_id=row_id(user),
        role=role,
        provider_id=provider_id,
        staff_role=staff_role,
        new_account=new_account and user.password_hash == NO_PASSWORD,
    )
    session.add(invitation)
    session.flush()
    return invitation


def invitation_link(secret: str, invitation: Invitation) -> str:
    return links.sign(secret, links.INVITE, {"i": invitation.id})


def open_invitation(session: Session, secret: str, token: str, max_age: int) -> Invitation:
    payload = links.load(secret, links.INVITE, token, max_age)
    invitation = session.get(Invitation, str(payload.get("i")))
    if invitation is None or invitation.accepted_at is not None:
        raise InvalidRequest("This link is not valid any more. Ask for a new one.")
    return invitation


def accept_invitation(
    session: Session,
    audit_key: KeySource,
    invitation: Invitation,
    user: User,
    password: str | None = None,
) -> None:
    """Accept as `user`: the invited account only. For an account made for the invitation,
    `password` is its first (the mailed link proved the address: verified); an existing account
    must already be verified."""
    if invitation.accepted_at is not None or invitation.user_id != user.id:
        raise InvalidRequest("This invitation was made for another account. Sign in with that one.")
    if invitation.new_account and user.password_hash == NO_PASSWORD:
        if password is None:
            raise InvalidRequest(
                "Choose a password of at least %(num)d characters.", num=MIN_PASSWORD
            )
        set_password(session, user, password)
        mark_verified(user)
    require_verified(user)
    invitation.accepted_at = utcnow()
    session.add_all([invitation, user])
    session.flush()
    invitation_accepted.send(session, invitation=invitation, user=user, audit_key=audit_key)


def pending_invitations(session: Session, user: User) -> list[Invitation]:
    return list(
        session.exec(
            select(Invitation).where(
                Invitation.user_id == user.id,
                col(Invitation.accepted_at).is_(None),
            )
        )
    )


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
