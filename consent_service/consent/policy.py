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
    # `not_covered` only because of the job's purpose (a grant in force covers the rest of
    # the job): that purpose's code, so the person and the provider are told why.
    uncovered_purpose: str | None = None


def _scope_covers(g: ConsentGrant, operation: Operation, role: Role, provider_id: str) -> bool:
    return (
        g.modality == operation.modality.value
        and operation.value in g.operations
        and role.value in g.roles
        and (g.all_providers or provider_id in g.provider_ids)
    )


def _purpose_covers(g: ConsentGrant, purpose: str | None) -> bool:
    """A grant naming no purposes covers every purpose, and a job that states none; one naming
    some covers only a job that states one of them."""
    return not g.purposes or (purpose is not None and purpose in g.purposes)


def _in_force(g: ConsentGrant, now: datetime) -> bool:
    return as_utc(g.valid_from) <= now and (g.valid_until is None or as_utc(g.valid_until) > now)


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
    purpose: str | None = None,
) -> PersonVerdict:
    """Outcome for one enrolled person, from the latest version of each of their grants, their
    assurance level and the provider's minimum for the operation.

    A "no" (protect-only, a refusal, a revocation) is honoured whatever the assurance: denying
    is the safe error. Otherwise a person below the minimum is `assurance_too_low`, even with a
    grant in force (kept on the verdict, to show which one) and even without one: a grant made,
    or a consent request answered, by an account whose link to this face or voice is weaker
    than the provider requires proves no more than that link. A subject without a level (none
    recorded) is below every minimum.

    `purpose` is the job's stated purpose code (None: it stated none, and only grants covering
    every purpose cover it)."""
    verdict = _by_grants(
        grants,
        protect_only=protect_only,
        operation=operation,
        role=role,
        provider_id=provider_id,
        now=now,
        purpose=purpose,
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
    purpose: str | None = None,
) -> PersonVerdict:
    if protect_only:
        return PersonVerdict(Outcome.PROTECTED)
    in_scope = [g for g in grants if _scope_covers(g, operation, role, provider_id)]
    # An explicit refusal of this provider beats every consent over the same scope, one to all
    # providers and one naming this provider alike: the person said no to this provider.
    refusal = next(
        (
            g
            for g in in_scope
            if g.status == GrantStatus.REFUSED.value
            and _purpose_covers(g, purpose)
            and _in_force(g, now)
        ),
        None,
    )
    if refusal is not None:
        return PersonVerdict(Outcome.REFUSED, refusal)
    # A withdrawn refusal says nothing any more: it is neither a consent nor a revoked one.
    consents = [g for g in in_scope if not g.refusal]
    covering = [g for g in consents if _purpose_covers(g, purpose)]
    for g in covering:
        if g.status == GrantStatus.ACTIVE.value and _in_force(g, now):
            return PersonVerdict(Outcome.CONSENTED, g)
    # No grant covers now: name the strongest reason, revocation before expiry.
    revoked = next((g for g in covering if g.status == GrantStatus.REVOKED.value), None)
    if revoked is not None:
        return PersonVerdict(Outcome.REVOKED, revoked)
    expired = next(
        (
            g
            for g in covering
            if g.status == GrantStatus.EXPIRED.value
            or (g.valid_until is not None and as_utc(g.valid_until) <= now)
        ),
        None,
    )
    if expired is not None:
        return PersonVerdict(Outcome.EXPIRED, expired)
    # A grant in force would cover the job but for its purpose: say which purpose it lacked.
    if purpose is not None and any(
        g.status == GrantStatus.ACTIVE.value and _in_force(g, now) for g in consents
    ):
        return PersonVerdict(Outcome.NOT_COVERED, uncovered_purpose=purpose)
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
