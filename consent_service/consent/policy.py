"""The gate's rules from DESIGN.md, as pure functions of grants, matches and the clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from consent_service.consent.models import ConsentGrant
from consent_service.timeutil import as_utc
from consent_service.vocabulary import (
    Assurance,
    DecisionKind,
    GrantStatus,
    Operation,
    Outcome,
    Role,
)


@dataclass(frozen=True)
class PersonVerdict:
    outcome: Outcome
    grant: ConsentGrant | None = None


def _scope_covers(g: ConsentGrant, operation: Operation, role: Role, provider_id: str) -> bool:
    return (
        g.modality == operation.modality.value
        and operation.value in g.operations
        and role.value in g.roles
        and (g.all_providers or provider_id in g.provider_ids)
    )


_SAID_NO = (Outcome.PROTECTED, Outcome.REFUSED, Outcome.REVOKED)


def judge_person(
    grants: Sequence[ConsentGrant],
    *,
    protect_only: bool,
    operation: Operation,
    role: Role,
    provider_id: str,
    now: datetime,
    assurance: Assurance | None = None,
    minimum: Assurance | None = None,
) -> PersonVerdict:
    """Outcome for one enrolled person, from the latest version of each of their grants, their
    assurance level and the provider's minimum for the operation.

    A "no" (protect-only, a refusal, a revocation) is honoured whatever the assurance: denying
    is the safe error. Otherwise a person below the minimum is `assurance_too_low`, even with a
    grant in force (kept on the verdict, to show which one) and even without one: a grant made,
    or a consent request answered, by an account whose link to this face or voice is weaker
    than the provider requires proves no more than that link. A subject without a level (none
    recorded) is below every minimum."""
    verdict = _by_grants(
        grants,
        protect_only=protect_only,
        operation=operation,
        role=role,
        provider_id=provider_id,
        now=now,
    )
    if verdict.outcome in _SAID_NO or minimum is None:
        return verdict
    if assurance is None or not assurance.meets(minimum):
        return PersonVerdict(Outcome.ASSURANCE_TOO_LOW, verdict.grant)
    return verdict


def _by_grants(
    grants: Sequence[ConsentGrant],
    *,
    protect_only: bool,
    operation: Operation,
    role: Role,
    provider_id: str,
    now: datetime,
) -> PersonVerdict:
    if protect_only:
        return PersonVerdict(Outcome.PROTECTED)
    in_scope = [g for g in grants if _scope_covers(g, operation, role, provider_id)]
    for g in in_scope:
        started = as_utc(g.valid_from) <= now
        ended = g.valid_until is not None and as_utc(g.valid_until) <= now
        if g.status == GrantStatus.ACTIVE.value and started and not ended:
            return PersonVerdict(Outcome.CONSENTED, g)
    # No grant covers now: name the strongest reason, refusal before revocation before expiry.
    for status, outcome in (
        (GrantStatus.REFUSED, Outcome.REFUSED),
        (GrantStatus.REVOKED, Outcome.REVOKED),
    ):
        hit = next((g for g in in_scope if g.status == status.value), None)
        if hit is not None:
            return PersonVerdict(outcome, hit)
    expired = next(
        (
            g
            for g in in_scope
            if g.status == GrantStatus.EXPIRED.value
            or (g.valid_until is not None and as_utc(g.valid_until) <= now)
        ),
        None,
    )
    if expired is not None:
        return PersonVerdict(Outcome.EXPIRED, expired)
    return PersonVerdict(Outcome.NOT_COVERED)


_DENYING = {Outcome.REFUSED, Outcome.REVOKED, Outcome.PROTECTED}


def decide_job(
    outcomes: Sequence[Outcome], input_problems: Sequence[str]
) -> tuple[DecisionKind, list[str]]:
    """The job's decision and its reason codes.

    `input_problems` are reason codes for media that could not be used (`rejected_input`,
    `no_face_found`, …): any of them denies the job.
    """
    reasons = sorted(set(input_problems))
    if reasons:
        reasons += sorted({o.value for o in outcomes if o in _DENYING})
        return DecisionKind.DENY, reasons
    if not outcomes:
        return DecisionKind.DENY, ["no_face_found"]
    denying = sorted({o.value for o in outcomes if o in _DENYING})
    if denying:
        return DecisionKind.DENY, denying
    if all(o is Outcome.CONSENTED for o in outcomes):
        return DecisionKind.ALLOW, ["all_consented"]
    return DecisionKind.NEEDS_CONSENT, sorted(
        {o.value for o in outcomes if o is not Outcome.CONSENTED}
    )
