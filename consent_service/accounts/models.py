"""Accounts (people who sign in), the subjects whose face and voice they protect, and the link
that makes a subject a managed child of a guardian's account."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Column, Date, DateTime, LargeBinary, false, true
from sqlmodel import Field, SQLModel

from consent_service.timeutil import new_id, utcnow


def _ts(**kw) -> datetime:
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), **kw))


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True, max_length=320)
    password_hash: str
    # Part of the Flask-Login id: changing it (sign-out, password change) ends all sessions.
    session_token: str = Field(default_factory=new_id, max_length=32)
    # Operators run the console (/operator); granted by `consent-service operators add`.
    is_operator: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    # Pages and mails are in this language (`en`, `zh-CN`): the one signed up in, then the
    # switch's. None (older accounts, accounts made by the CLI): pages follow the browser, mails
    # carry both languages.
    language: str | None = Field(default=None, max_length=16)
    # The daily digest mail of blocked and protect-only attempts on the subjects this account
    # acts for (notices/digest.py); off, the notices stay on the dashboard only. Switched on the
    # account page or by the digest's signed unsubscribe link.
    notice_digest: bool = Field(default=True, sa_column_kwargs={"server_default": true()})
    created_at: datetime = _ts(nullable=False)
    # Set when the owner opened the verification link signed in (or set their password from a
    # mailed reset or invitation link): until then the account cannot enroll, grant, answer
    # consent requests or hold a role. Operator-imported people are verified by the operator.
    email_verified_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # TOTP two-factor sign-in: the base32 secret sealed with the envelope (AAD binds it to the
    # account), on from `totp_enabled_at`; the last time step used (a code works once).
    totp_secret: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    totp_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # The id of the template KEK that wrapped the data key (keyring purpose `template-kek`).
    totp_kek_id: str = Field(default="v0", max_length=64)
    totp_enabled_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    totp_last_step: int | None = None
    # SHA-256 digests of the unused recovery codes (each works once, instead of a TOTP code).
    recovery_codes: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))

    # Flask-Login's user protocol.
    is_active: bool = True
    is_authenticated: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    @property
    def is_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def has_totp(self) -> bool:
        return self.totp_enabled_at is not None


class Invitation(SQLModel, table=True):
    """A role offered by an operator (`operators add`, `providers add-staff`) to an address, by a
    mailed link. A new address gets an account with no usable password: the link sets it. An
    existing account keeps its password and gets the role only when its verified owner, signed
    in, accepts. The link carries a signature of `id`; accepting sets `accepted_at` (once)."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: int = Field(foreign_key="user.id", index=True)
    role: str = Field(max_length=16)  # operator | staff
    provider_id: str | None = Field(default=None, foreign_key="provider.id", max_length=32)
    staff_role: str | None = Field(default=None, max_length=16)
    # The account was made for this invitation: accepting sets its first password.
    new_account: bool = False
    created_at: datetime = _ts(nullable=False)
    accepted_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class Subject(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    # Stable pseudonymous handle; providers only ever see a keyed hash of it.
    public_id: str = Field(default_factory=new_id, unique=True, max_length=32)
    # The account that acts for this subject: its owner, or the guardian of a managed child
    # subject (see guardians/). An account owns one subject and may manage several more.
    user_id: int = Field(foreign_key="user.id", index=True)
    display_name: str = Field(default="", max_length=200)
    # Enrolled only to be protected: every matching job is denied.
    protect_only: bool = False
    # The person chose to have their templates destroyed when their last grant is withdrawn
    # (enforced by retention's `templates_withdrawn` purge).
    destroy_templates_on_withdrawal: bool = Field(
        default=False, sa_column_kwargs={"server_default": false()}
    )
    # vocabulary.Assurance: how the enrolled face and voice were shown to be this account's own
    # (accounts/assurance.py); None until something is enrolled.
    assurance: str | None = Field(default=None, max_length=16)
    created_at: datetime = _ts(nullable=False)


class Guardianship(SQLModel, table=True):
    """One row per managed subject. The child's `Subject.user_id` is the guardian's account (the
    account that acts for it and hears about it); this row is what makes it a managed subject."""

    id: int | None = Field(default=None, primary_key=True)
    subject_id: int = Field(foreign_key="subject.id", unique=True)
    guardian_user_id: int = Field(foreign_key="user.id", index=True)
    relationship: str = Field(max_length=32)  # parent | legal_guardian
    date_of_birth: date = Field(sa_column=Column(Date, nullable=False))
    # The statement the guardian ticked, verbatim, as evidence of what they declared.
    declaration: str = Field(max_length=1000)
    declared_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    # Set when the child's subject is erased; the row stays as the record of who consented.
    ended_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class StepUp(SQLModel, table=True):
    """An action that waits for a short fresh live check of the person acting (creating a
    grant, approving a consent request): it is carried out by the worker once the check's face
    (or voice) matches the account's own enrolled templates (accounts/step_up.py)."""

    __tablename__ = "step_up"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: int = Field(foreign_key="user.id", index=True)
    # Whose enrolled templates the check must match: the account's own subject (a guardian
    # proves themself, not the child they act for).
    subject_id: int = Field(foreign_key="subject.id", index=True)
    kind: str = Field(max_length=32)  # who carries it out: "grant", "consent_request"
    modality: str = Field(max_length=8)  # face | voice: what the check matches
    # What to do, as the capability that asked wrote it (JSON; no biometric data).
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Where the page goes when it is done (a same-site path).
    return_to: str = Field(default="/", max_length=400)
    status: str = Field(default="waiting", max_length=16, index=True)  # a StepUpStatus
    live_session_id: str | None = Field(default=None, max_length=32)
    # What carrying it out made ({"grant_id": ...}), or why it failed (English, and message id
    # + parameters for the reader's language).
    result: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = None
    error_params: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = _ts(nullable=False)
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
