"""Whether a signed decision still stands: the "OCSP for consent". Decision tokens are
short-lived (DECISION_TOKEN_TTL); whoever relies on a decision for longer asks its status,
read from the records as they are now: `valid`; `superseded` when a later revision of the
job's decision replaced it; for an `allow`, `consent_withdrawn` when a grant it relied on was
revoked and `consent_expired` when a grant's period ended."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from consent_service.consent.service import latest_version
from consent_service.errors import NotFound
from consent_service.gate.models import Decision, DecisionRevision, Finding
from consent_service.gate.schemas import DecisionStatus, GrantStanding, SupersedingDecision
from consent_service.timeutil import as_utc
from consent_service.vocabulary import DecisionKind, DecisionStanding, GrantStatus, Outcome

# A token is named by its id (`jti`, 32 hex digits) or by the SHA-256 of the token (64).
_JTI = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Grant statuses that end consent by the person's act (a revocation; erasing the account
# revokes too), as opposed to the end of the period they chose.
_WITHDRAWN = (GrantStatus.REVOKED, GrantStatus.REFUSED)


@dataclass(frozen=True)
class GrantState:
    """A grant an `allow` relied on, as it is now."""

    grant_id: str
    version: int  # the version the decision relied on
    current_version: int
    status: GrantStatus
    since: datetime | None  # when it stopped being in force; None while it is


@dataclass(frozen=True)
class Standing:
    """The status of the revision one token signed."""

    revision: DecisionRevision
    status: DecisionStanding
    since: datetime | None
    superseded_by: DecisionRevision | None
    grants: list[GrantState]


def find_revision(session: Session, reference: str) -> DecisionRevision:
    """The decision revision a token id or a token's SHA-256 (hex) names; NotFound otherwise."""
    ref = (reference or "").lower()
    if _JTI.fullmatch(ref):
        where = col(DecisionRevision.jti) == ref
    elif _SHA256.fullmatch(ref):
        where = col(DecisionRevision.token_sha256) == ref
    else:
        raise NotFound("No such decision token.")
    row = session.exec(select(DecisionRevision).where(where)).first()
    if row is None:
        raise NotFound("No such decision token.")
    return row


def revision_of_claims(session: Session, claims: dict[str, Any]) -> DecisionRevision | None:
    """The revision a verified token's claims sign (its `jti` for its job `sub`), if recorded."""
    jti, job_id = claims.get("jti"), claims.get("sub")
    if not isinstance(jti, str) or not isinstance(job_id, str):
        return None
    return session.exec(
        select(DecisionRevision).where(
            DecisionRevision.jti == jti, DecisionRevision.job_id == job_id
        )
    ).first()


def standing(session: Session, revision: DecisionRevision, now: datetime) -> Standing:
    """Whether `revision` still stands: superseded first (it is not the job's decision any
    more), then, for an `allow`, the grants it relied on (a withdrawal before an expiry)."""
    decision = session.get(Decision, revision.job_id)
    if decision is not None and decision.revision > revision.revision:
        latest = session.exec(
            select(DecisionRevision).where(
                DecisionRevision.job_id == revision.job_id,
                DecisionRevision.revision == decision.revision,
            )
        ).one()
        return Standing(
            revision, DecisionStanding.SUPERSEDED, as_utc(latest.created_at), latest, []
        )
    if revision.decision != DecisionKind.ALLOW.value:
        # A deny or a needs_consent stands until a later revision replaces it.
        return Standing(revision, DecisionStanding.VALID, None, None, [])
    grants = grants_relied_on(session, revision, now)
    for statuses, kind in (
        (_WITHDRAWN, DecisionStanding.CONSENT_WITHDRAWN),
        ((GrantStatus.EXPIRED,), DecisionStanding.CONSENT_EXPIRED),
    ):
        ended = [g.since for g in grants if g.status in statuses and g.since is not None]
        if any(g.status in statuses for g in grants):
            return Standing(revision, kind, min(ended) if ended else None, None, grants)
    return Standing(revision, DecisionStanding.VALID, None, None, grants)


def grants_relied_on(
    session: Session, revision: DecisionRevision, now: datetime
) -> list[GrantState]:
    """Each grant named by the revision's `consented` findings, with its latest version."""
    findings = session.exec(
        select(Finding)
        .where(
            Finding.job_id == revision.job_id,
            Finding.revision == revision.revision,
            Finding.outcome == Outcome.CONSENTED.value,
            col(Finding.grant_id).is_not(None),
        )
        .order_by(col(Finding.id))
    ).all()
    relied: dict[str, int] = {}
    for f in findings:
        assert f.grant_id is not None  # selected above
        relied.setdefault(f.grant_id, f.grant_version or 1)
    states = []
    for grant_id, version in relied.items():
        latest = latest_version(session, grant_id)
        if latest is None:  # grants are never deleted; a missing one is not in force
            states.append(GrantState(grant_id, version, version, GrantStatus.REVOKED, None))
            continue
        status, since = GrantStatus(latest.status), None
        if status is GrantStatus.ACTIVE:
            if latest.valid_until is not None and as_utc(latest.valid_until) <= now:
                # The period ended; beat writes the `expired` version later.
                status, since = GrantStatus.EXPIRED, as_utc(latest.valid_until)
        elif status is GrantStatus.EXPIRED and latest.valid_until is not None:
            since = as_utc(latest.valid_until)
        else:
            since = as_utc(latest.created_at)
        states.append(GrantState(grant_id, version, latest.version, status, since))
    return states


def status_view(s: Standing, now: datetime) -> DecisionStatus:
    """What anyone may read of a decision's status: no job, provider, person or grant."""
    later = s.superseded_by
    return DecisionStatus(
        jti=s.revision.jti,
        revision=s.revision.revision,
        decision=DecisionKind(s.revision.decision),
        issued_at=as_utc(s.revision.created_at),
        status=s.status,
        since=s.since,
        superseded_by=(
            SupersedingDecision(
                revision=later.revision,
                decision=DecisionKind(later.decision),
                jti=later.jti,
                issued_at=as_utc(later.created_at),
            )
            if later is not None
            else None
        ),
        checked_at=now,
    )


def grants_view(s: Standing) -> list[GrantStanding]:
    """The grants behind an `allow` as they are now, for whoever holds its token (which names
    them already)."""
    return [
        GrantStanding(
            grant_id=g.grant_id,
            version=g.version,
            current_version=g.current_version,
            status=g.status,
            since=g.since,
        )
        for g in s.grants
    ]
