"""The provider portal's domain: staff memberships, and the provider-scoped reads and actions
its pages show. Every read takes the staff member's provider and filters by it, so another
provider's id is as unknown as a missing one. Keys, webhooks and job views are the providers',
webhooks' and gate's own service functions; this module scopes, pages and audits them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, select

from consent_service.accounts import service as accounts
from consent_service.accounts.models import Invitation, User
from consent_service.audit import service as audit
from consent_service.crypto import KeySource
from consent_service.errors import Conflict, InvalidRequest
from consent_service.gate.models import Decision, GateJob
from consent_service.portal.models import ProviderStaff
from consent_service.providers import service as providers
from consent_service.providers.models import ApiKey, Provider
from consent_service.rows import row_id
from consent_service.timeutil import as_utc, utcnow
from consent_service.vocabulary import (
    Assurance,
    DecisionKind,
    JobStatus,
    Operation,
    Scope,
    StaffRole,
)

JOBS_PAGE = 50  # jobs per page
USAGE_DAYS = 30
UNDECIDED = "undecided"  # usage column for jobs queued, processing or failed


# ---------------------------------------------------------------------------- staff
@dataclass(frozen=True)
class StaffAdded:
    user: User
    # The membership when the account already works for this provider (its role changed),
    # else None: the invitation's link makes it staff once accepted.
    membership: ProviderStaff | None
    invitation: Invitation | None


def add_staff(
    session: Session,
    audit_key: KeySource,
    provider: Provider,
    email: str,
    role: str = StaffRole.ADMIN.value,
) -> StaffAdded:
    """Invite the address to be staff of the provider (the caller mails the invitation's link):
    a new address gets an account whose password the link sets; an existing account keeps its
    password and becomes staff only when its verified owner accepts. An account works for one
    provider only; adding a member of this provider again changes its role at once."""
    try:
        role = StaffRole(role).value
    except ValueError:
        raise InvalidRequest(
            "Staff role must be one of: %(roles)s.", roles=", ".join(r.value for r in StaffRole)
        ) from None
    user = accounts.find_user(session, email)
    if user is not None and not user.is_active:
        raise InvalidRequest("This account was deleted; it cannot be made staff.")
    membership = None
    if user is not None:
        membership = session.exec(
            select(ProviderStaff).where(ProviderStaff.user_id == user.id)
        ).first()
    if membership is not None and membership.provider_id != provider.id:
        raise Conflict("This account is already staff of another provider.")
    if membership is not None:
        assert user is not None
        membership.role = role
        session.add(membership)
        session.flush()
        _audit_staff(session, audit_key, membership, "operator:cli")
        return StaffAdded(user, membership, None)
    invitation = accounts.invite(session, email, "staff", provider_id=provider.id, staff_role=role)
    invited = session.get(User, invitation.user_id)
    assert invited is not None  # foreign key
    audit.append(
        session,
        audit_key,
        "provider.staff_invited",
        "operator:cli",
        {"provider_id": provider.id, "user_id": invited.id, "role": role},
    )
    return StaffAdded(invited, None, invitation)


def _audit_staff(session: Session, audit_key: KeySource, membership: ProviderStaff, actor: str):
    audit.append(
        session,
        audit_key,
        "provider.staff_added",
        actor,
        {
            "provider_id": membership.provider_id,
            "user_id": membership.user_id,
            "role": membership.role,
        },
    )


def _staff_accepted(
    session: Session, invitation: Invitation, user: User, audit_key: KeySource
) -> None:
    """The receiver of `accounts.service.invitation_accepted` for the staff role."""
    if invitation.role != "staff" or invitation.provider_id is None:
        return
    membership = session.exec(select(ProviderStaff).where(ProviderStaff.user_id == user.id)).first()
    if membership is not None and membership.provider_id != invitation.provider_id:
        raise Conflict("This account is already staff of another provider.")
    membership = membership or ProviderStaff(
        provider_id=invitation.provider_id,
        user_id=row_id(user),
    )
    membership.role = invitation.staff_role or StaffRole.VIEWER.value
    session.add(membership)
    session.flush()
    _audit_staff(session, audit_key, membership, f"user:{user.id}")


accounts.invitation_accepted.connect(_staff_accepted)


@dataclass(frozen=True)
class Staff:
    """The signed-in staff member as the portal sees them: whose provider, which role."""

    user_id: int
    provider: Provider
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == StaffRole.ADMIN.value

    @property
    def actor(self) -> str:
        return f"staff:{self.user_id}"


def staff_of(session: Session, user: User) -> Staff | None:
    """The account's provider membership, or None if it is nobody's staff."""
    row = session.exec(
        select(ProviderStaff, Provider)
        .join(Provider, col(Provider.id) == ProviderStaff.provider_id)
        .where(ProviderStaff.user_id == user.id)
    ).first()
    if row is None:
        return None
    membership, provider = row
    return Staff(user_id=row_id(user), provider=provider, role=membership.role)


# ---------------------------------------------------------------------------- API keys
@dataclass(frozen=True)
class KeyShown:
    key: ApiKey
    state: str  # `active`, `expired` or `revoked` (providers.key_state)


def list_keys(session: Session, provider: Provider) -> list[KeyShown]:
    """The provider's keys, newest first, each with its state now (hashes stay in the
    database)."""
    now = utcnow()
    return [
        KeyShown(k, providers.key_state(k, now)) for k in providers.list_keys(session, provider)
    ]


def create_key(
    session: Session,
    audit_key: KeySource,
    staff: Staff,
    name: str,
    scopes: Iterable[Scope],
    expires_at: datetime | None = None,
) -> str:
    """Issue a key for the staff member's provider with the scopes chosen and an optional
    expiry; the raw key is returned once."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidRequest("Give the key a name of 1 to 200 characters.")
    chosen = sorted({s.value for s in scopes})
    raw = providers.issue_key(session, staff.provider, name, [Scope(s) for s in chosen], expires_at)
    audit.append(
        session,
        audit_key,
        "provider.key_issued",
        staff.actor,
        {
            "provider_id": staff.provider.id,
            "prefix": providers.key_prefix(raw),
            "name": name,
            "scopes": chosen,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return raw


def rotate_key(
    session: Session, audit_key: KeySource, staff: Staff, prefix: str, overlap: timedelta
) -> providers.Rotation:
    """Rotate one of the provider's own keys (`providers.rotate_key`); audited."""
    rotation = providers.rotate_key(session, staff.provider, prefix, overlap)
    audit.append(
        session,
        audit_key,
        "provider.key_rotated",
        staff.actor,
        {
            "provider_id": staff.provider.id,
            "prefix": prefix,
            "new_prefix": rotation.new_prefix,
            "old_expires_at": as_utc(rotation.old.expires_at).isoformat()
            if rotation.old.expires_at
            else None,
        },
    )
    return rotation


def revoke_key(session: Session, audit_key: KeySource, staff: Staff, prefix: str) -> None:
    """Revoke one of the provider's own keys; another provider's prefix is `NotFound`."""
    providers.revoke_key(session, staff.provider, prefix)
    audit.append(
        session,
        audit_key,
        "provider.key_revoked",
        staff.actor,
        {"provider_id": staff.provider.id, "prefix": prefix},
    )


def webhook_changed(
    session: Session, audit_key: KeySource, staff: Staff, url: str, rotated: bool
) -> None:
    """Record a webhook change made in the portal (the change itself is `webhooks.configure`)."""
    audit.append(
        session,
        audit_key,
        "provider.webhook_configured",
        staff.actor,
        {"provider_id": staff.provider.id, "url": url, "secret_rotated": rotated},
    )


def set_assurance_minimums(
    session: Session,
    audit_key: KeySource,
    staff: Staff,
    minimums: dict[Operation, Assurance | None],
) -> dict[Operation, Assurance]:
    """The portal's form replaces the provider's whole set (audited by the providers' service,
    as the staff member)."""
    return providers.set_assurance_minimums(
        session, audit_key, staff.provider.id, minimums, actor=staff.actor
    )


# ---------------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class JobFilter:
    status: str | None = None
    decision: str | None = None
    operation: str | None = None
    created_from: date | None = None  # first day included
    created_to: date | None = None  # last day included

    def __post_init__(self) -> None:
        checks = (
            ("status", self.status, JobStatus),
            ("decision", self.decision, DecisionKind),
            ("operation", self.operation, Operation),
        )
        for label, value, allowed in checks:
            if value and value not in {v.value for v in allowed}:
                raise InvalidRequest("Unknown %(label)s %(value)s.", label=label, value=repr(value))
        if self.created_from and self.created_to and self.created_from > self.created_to:
            raise InvalidRequest("The first day comes after the last day.")


@dataclass(frozen=True)
class JobRow:
    id: str
    operation: str
    status: str
    decision: str | None
    created_at: datetime


@dataclass(frozen=True)
class JobPage:
    rows: list[JobRow]
    page: int
    total: int
    per_page: int = JOBS_PAGE
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pages", max(1, -(-self.total // self.per_page)))


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def list_jobs(
    session: Session,
    provider: Provider,
    filters: JobFilter,
    page: int = 1,
    per_page: int = JOBS_PAGE,
) -> JobPage:
    """One page of the provider's jobs, newest first, with their decisions."""
    where: list[ColumnElement[bool]] = [col(GateJob.provider_id) == provider.id]
    if filters.status:
        where.append(col(GateJob.status) == filters.status)
    if filters.operation:
        where.append(col(GateJob.operation) == filters.operation)
    if filters.decision:
        where.append(col(Decision.decision) == filters.decision)
    if filters.created_from:
        where.append(col(GateJob.created_at) >= _day_start(filters.created_from))
    if filters.created_to:
        where.append(col(GateJob.created_at) < _day_start(filters.created_to + timedelta(days=1)))
    joined = (
        select(GateJob.id).outerjoin(Decision, col(Decision.job_id) == GateJob.id).where(*where)
    )
    total = session.exec(select(func.count()).select_from(joined.subquery())).one()
    page = max(1, page)
    rows = session.exec(
        select(GateJob, Decision.decision)
        .outerjoin(Decision, col(Decision.job_id) == GateJob.id)
        .where(*where)
        .order_by(col(GateJob.created_at).desc(), col(GateJob.id))
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return JobPage(
        rows=[
            JobRow(job.id, job.operation, job.status, decision, as_utc(job.created_at))
            for job, decision in rows
        ],
        page=page,
        total=total,
        per_page=per_page,
    )


# ---------------------------------------------------------------------------- usage
@dataclass(frozen=True)
class UsageDay:
    day: date
    counts: dict[str, int]  # allow / deny / needs_consent / undecided → jobs submitted that day

    @property
    def total(self) -> int:
        return sum(self.counts.values())


USAGE_COLUMNS = (*(d.value for d in DecisionKind), UNDECIDED)


def _job_day(session: Session):
    """The UTC calendar day of a job's submission, as SQL for this database."""
    if session.get_bind().dialect.name == "postgresql":
        # timestamptz → date would use the session's time zone: pin it to UTC.
        return func.date(func.timezone("UTC", GateJob.created_at))
    return func.date(GateJob.created_at)  # SQLite stores the UTC wall time


def usage(
    session: Session, provider: Provider, days: int = USAGE_DAYS, now: datetime | None = None
) -> list[UsageDay]:
    """Jobs per day per decision over the last `days` UTC days (today included), oldest first;
    days without jobs are present with zeros."""
    today = as_utc(now or utcnow()).date()
    first = today - timedelta(days=days - 1)
    day = _job_day(session).label("day")
    rows = session.exec(
        select(day, Decision.decision, func.count())
        .select_from(GateJob)
        .outerjoin(Decision, col(Decision.job_id) == GateJob.id)
        .where(
            col(GateJob.provider_id) == provider.id,
            col(GateJob.created_at) >= _day_start(first),
            col(GateJob.created_at) < _day_start(today + timedelta(days=1)),
        )
        .group_by(day, Decision.decision)
    ).all()
    table = {first + timedelta(days=i): dict.fromkeys(USAGE_COLUMNS, 0) for i in range(days)}
    for when, decision, count in rows:
        key = when if isinstance(when, date) else date.fromisoformat(str(when))
        if key in table:
            table[key][decision or UNDECIDED] += count
    return [UsageDay(d, counts) for d, counts in sorted(table.items())]
