"""The portal's domain: staff memberships, job filters and pages, usage per UTC day (on SQLite
and on PostgreSQL in a session whose time zone is not UTC)."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, SQLModel, create_engine

from consent_service.accounts import service as accounts
from consent_service.crypto import StaticKeys
from consent_service.errors import Conflict, EmailNotVerified, InvalidRequest
from consent_service.portal import service
from consent_service.providers.service import create_provider
from tests import factories

KEY = StaticKeys.single(secrets.token_bytes(32))
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _job(s: Session, provider, when: datetime, decision: str | None, **kw) -> str:
    with factories.bound(s):
        job = factories.GateJobFactory(
            provider=provider,
            operation=kw.get("operation", "face_swap"),
            status=kw.get("status", "decided" if decision else "queued"),
            created_at=when,
        )
        if decision:
            factories.DecisionFactory(job=job, decision=decision)
    return job.id


def _usage_story(s: Session) -> dict[date, dict[str, int]]:
    acme, globex = create_provider(s, "Acme"), create_provider(s, "Globex")
    late = NOW.replace(hour=23, minute=30) - timedelta(days=1)  # 23 Nov, 23:30 UTC
    _job(s, acme, NOW, "allow")
    _job(s, acme, NOW - timedelta(hours=1), "allow")
    _job(s, acme, NOW, "needs_consent")
    _job(s, acme, NOW, None)  # queued: undecided
    _job(s, acme, late, "deny")  # still 23 Nov in UTC, 24 Nov in Shanghai
    _job(s, acme, NOW - timedelta(days=29), "deny")  # the oldest day shown
    _job(s, acme, NOW - timedelta(days=30), "allow")  # too old
    _job(s, globex, NOW, "allow")  # another provider's
    s.commit()
    return {d.day: d.counts for d in service.usage(s, acme, now=NOW)}


def _check_usage(table: dict[date, dict[str, int]]) -> None:
    assert len(table) == 30 and min(table) == date(2026, 10, 26) and max(table) == NOW.date()
    assert table[NOW.date()] == {"allow": 2, "deny": 0, "needs_consent": 1, "undecided": 1}
    assert table[date(2026, 11, 23)] == {"allow": 0, "deny": 1, "needs_consent": 0, "undecided": 0}
    assert table[date(2026, 10, 26)]["deny"] == 1
    assert sum(sum(c.values()) for c in table.values()) == 6


def test_usage_counts_jobs_per_utc_day_and_decision(session):
    _check_usage(_usage_story(session))


@pytest.mark.postgres
def test_usage_days_are_utc_days_on_postgresql_in_another_time_zone(postgres_database):
    with postgres_database() as url:
        engine = create_engine(url, connect_args={"options": "-c timezone=Asia/Shanghai"})
        try:
            SQLModel.metadata.create_all(engine)
            with Session(engine) as s:
                _check_usage(_usage_story(s))
        finally:
            engine.dispose()


def test_job_filters_and_pages(session):
    acme, globex = create_provider(session, "Acme"), create_provider(session, "Globex")
    allow = _job(session, acme, NOW, "allow")
    deny = _job(session, acme, NOW - timedelta(days=2), "deny", operation="voice_cloning")
    queued = _job(session, acme, NOW - timedelta(days=5), None)
    _job(session, globex, NOW, "allow")

    def ids(**filters) -> list[str]:
        page = service.list_jobs(session, acme, service.JobFilter(**filters))
        return [r.id for r in page.rows]

    assert ids() == [allow, deny, queued]  # newest first, Globex's job absent
    assert ids(decision="allow") == [allow]
    assert ids(status="queued") == [queued]
    assert ids(operation="voice_cloning") == [deny]
    day = (NOW - timedelta(days=2)).date()
    assert ids(created_from=day, created_to=day) == [deny]
    assert ids(created_from=day) == [allow, deny]
    assert ids(created_to=day) == [deny, queued]

    first = service.list_jobs(session, acme, service.JobFilter(), page=1, per_page=2)
    second = service.list_jobs(session, acme, service.JobFilter(), page=2, per_page=2)
    assert (first.total, first.pages) == (3, 2)
    assert [r.id for r in first.rows + second.rows] == [allow, deny, queued]

    with pytest.raises(InvalidRequest):
        service.JobFilter(decision="maybe")
    with pytest.raises(InvalidRequest):
        service.JobFilter(created_from=NOW.date(), created_to=day)


def test_staff_are_invited_and_belong_to_one_provider(session):
    acme, globex = create_provider(session, "Acme"), create_provider(session, "Globex")
    added = service.add_staff(session, KEY, acme, "Kim@Example.org")
    # A new address: an account nobody can sign in to, staff only once the link is accepted.
    assert added.membership is None and added.invitation.new_account
    assert accounts.authenticate(session, "kim@example.org", "") is None
    assert service.staff_of(session, added.user) is None
    accounts.accept_invitation(session, KEY, added.invitation, added.user, "kim's own password")
    assert added.user.is_verified  # the mailed link proved the address
    staff = service.staff_of(session, added.user)
    assert (staff.provider.id, staff.role, staff.is_admin) == (acme.id, "admin", True)

    again = service.add_staff(session, KEY, acme, "kim@example.org", "viewer")
    assert again.invitation is None and again.user.id == added.user.id  # a member: role changed
    assert service.staff_of(session, added.user).role == "viewer"
    with pytest.raises(Conflict):
        service.add_staff(session, KEY, globex, "kim@example.org")
    with pytest.raises(InvalidRequest):
        service.add_staff(session, KEY, acme, "lee@example.org", "owner")


def test_an_invitation_never_adopts_an_existing_accounts_password(session):
    globex = create_provider(session, "Globex")
    squatter = accounts.sign_up(session, "lee@example.org", "the squatter's password")
    invited = service.add_staff(session, KEY, globex, "lee@example.org")
    assert not invited.invitation.new_account and invited.user.id == squatter.id
    # The owner who never verified the address cannot take the role, not even with the link...
    with pytest.raises(EmailNotVerified):
        accounts.accept_invitation(session, KEY, invited.invitation, squatter, "x" * 12)
    assert service.staff_of(session, squatter) is None
    # ...and the link sets no password on an existing account.
    assert accounts.authenticate(session, "lee@example.org", "x" * 12) is None
    other = accounts.sign_up(session, "mo@example.org", "mo's long password")
    accounts.mark_verified(other)
    with pytest.raises(InvalidRequest):  # someone else's invitation
        accounts.accept_invitation(session, KEY, invited.invitation, other)
    accounts.mark_verified(squatter)  # once the address is proved, its owner may accept
    accounts.accept_invitation(session, KEY, invited.invitation, squatter)
    assert service.staff_of(session, squatter).role == "admin"
    assert accounts.authenticate(session, "lee@example.org", "the squatter's password")
