"""The gate's rules (DESIGN.md "The gate, precisely") for one person and for a whole job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consent_service.consent.models import ConsentGrant
from consent_service.consent.policy import decide_job, judge_person
from consent_service.vocabulary import Assurance, DecisionKind, Operation, Outcome, Role

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PROVIDER = "provider-a"


def grant(**overrides) -> ConsentGrant:
    """An active face-swap grant to PROVIDER, for both roles, that started yesterday."""
    fields = {
        "subject_id": 1,
        "modality": "face",
        "operations": ["face_swap"],
        "roles": ["source", "target"],
        "all_providers": False,
        "provider_ids": [PROVIDER],
        "valid_from": NOW - timedelta(days=1),
        "valid_until": None,
        "status": "active",
    }
    fields.update(overrides)
    return ConsentGrant(**fields)


def judge(
    grants: list[ConsentGrant],
    *,
    protect_only: bool = False,
    operation: Operation = Operation.FACE_SWAP,
    role: Role = Role.SOURCE,
    provider_id: str = PROVIDER,
    now: datetime = NOW,
):
    return judge_person(
        grants,
        protect_only=protect_only,
        operation=operation,
        role=role,
        provider_id=provider_id,
        now=now,
    )


class TestJudgePerson:
    def test_active_grant_in_scope_is_consent_and_names_the_grant(self):
        g = grant()
        verdict = judge([g])
        assert verdict.outcome is Outcome.CONSENTED
        assert verdict.grant is g

    def test_grant_to_all_providers_covers_an_unlisted_provider(self):
        g = grant(all_providers=True, provider_ids=[])
        assert judge([g], provider_id="someone-else").outcome is Outcome.CONSENTED

    def test_grant_covers_each_listed_operation_and_role(self):
        g = grant(operations=["face_swap", "face_reenactment"], roles=["target"])
        assert (
            judge([g], operation=Operation.FACE_REENACTMENT, role=Role.TARGET).outcome
            is Outcome.CONSENTED
        )

    def test_naive_datetimes_from_sqlite_are_read_as_utc(self):
        naive_start = (NOW - timedelta(hours=1)).replace(tzinfo=None)
        naive_end = (NOW - timedelta(minutes=1)).replace(tzinfo=None)
        assert judge([grant(valid_from=naive_start)]).outcome is Outcome.CONSENTED
        assert (
            judge([grant(valid_from=naive_start, valid_until=naive_end)]).outcome is Outcome.EXPIRED
        )

    def test_revoked_grant(self):
        g = grant(status="revoked")
        verdict = judge([g])
        assert verdict.outcome is Outcome.REVOKED
        assert verdict.grant is g

    def test_refused_grant(self):
        g = grant(status="refused")
        verdict = judge([g])
        assert verdict.outcome is Outcome.REFUSED
        assert verdict.grant is g

    def test_active_grant_past_its_end_date_is_expired(self):
        g = grant(valid_until=NOW - timedelta(seconds=1))
        verdict = judge([g])
        assert verdict.outcome is Outcome.EXPIRED
        assert verdict.grant is g

    def test_grant_ends_at_valid_until_exactly(self):
        assert judge([grant(valid_until=NOW)]).outcome is Outcome.EXPIRED
        assert judge([grant(valid_until=NOW + timedelta(seconds=1))]).outcome is Outcome.CONSENTED

    def test_grant_marked_expired_is_expired_even_without_an_end_date(self):
        g = grant(status="expired", valid_until=None)
        verdict = judge([g])
        assert verdict.outcome is Outcome.EXPIRED
        assert verdict.grant is g

    def test_grant_not_yet_started_does_not_cover_now(self):
        assert judge([grant(valid_from=NOW + timedelta(days=1))]).outcome is Outcome.NOT_COVERED

    def test_grant_starts_at_valid_from_exactly(self):
        assert judge([grant(valid_from=NOW)]).outcome is Outcome.CONSENTED

    def test_no_grants_at_all(self):
        verdict = judge([])
        assert verdict.outcome is Outcome.NOT_COVERED
        assert verdict.grant is None

    @pytest.mark.parametrize(
        ("overrides", "call"),
        [
            pytest.param({}, {"operation": Operation.FACE_REENACTMENT}, id="other-operation"),
            pytest.param({}, {"operation": Operation.FACE_GENERATION}, id="other-operation-2"),
            pytest.param({"roles": ["target"]}, {"role": Role.SOURCE}, id="other-role"),
            pytest.param({"roles": ["source"]}, {"role": Role.TARGET}, id="other-role-2"),
            pytest.param({}, {"provider_id": "provider-b"}, id="other-provider"),
            pytest.param({"provider_ids": []}, {}, id="no-provider-listed"),
            pytest.param({"modality": "voice"}, {}, id="other-modality"),
        ],
    )
    def test_grant_outside_the_job_does_not_cover_it(self, overrides, call):
        verdict = judge([grant(**overrides)], **call)
        assert verdict.outcome is Outcome.NOT_COVERED
        assert verdict.grant is None

    def test_refusal_for_another_provider_does_not_count_here(self):
        refused_elsewhere = grant(status="refused", provider_ids=["provider-b"])
        assert judge([refused_elsewhere]).outcome is Outcome.NOT_COVERED

    def test_one_covering_active_grant_wins_over_other_grants(self):
        revoked = grant(status="revoked")
        active = grant()
        verdict = judge([revoked, active])
        assert verdict.outcome is Outcome.CONSENTED
        assert verdict.grant is active

    def test_strongest_reason_refusal_then_revocation_then_expiry(self):
        expired = grant(valid_until=NOW - timedelta(days=1))
        revoked = grant(status="revoked")
        refused = grant(status="refused")
        assert judge([expired, revoked, refused]).outcome is Outcome.REFUSED
        assert judge([expired, revoked]).grant is revoked
        assert judge([grant(valid_from=NOW + timedelta(days=1)), expired]).grant is expired

    def test_protect_only_person_is_protected_whatever_they_granted(self):
        verdict = judge([grant()], protect_only=True)
        assert verdict.outcome is Outcome.PROTECTED
        assert verdict.grant is None


class TestDecideJob:
    def test_allow_only_when_everyone_consented(self):
        assert decide_job([Outcome.CONSENTED], []) == (DecisionKind.ALLOW, ["all_consented"])
        assert decide_job([Outcome.CONSENTED] * 3, []) == (
            DecisionKind.ALLOW,
            ["all_consented"],
        )

    @pytest.mark.parametrize("denying", [Outcome.REFUSED, Outcome.REVOKED, Outcome.PROTECTED])
    def test_one_refused_revoked_or_protected_person_denies(self, denying):
        assert decide_job([Outcome.CONSENTED, denying], []) == (DecisionKind.DENY, [denying.value])

    def test_deny_outranks_needs_consent_and_lists_each_denial_once(self):
        outcomes = [Outcome.REVOKED, Outcome.UNENROLLED, Outcome.REFUSED, Outcome.REVOKED]
        assert decide_job(outcomes, []) == (DecisionKind.DENY, ["refused", "revoked"])

    @pytest.mark.parametrize(
        "missing",
        [Outcome.UNENROLLED, Outcome.AMBIGUOUS, Outcome.EXPIRED, Outcome.NOT_COVERED],
    )
    def test_anyone_without_consent_who_did_not_refuse_needs_consent(self, missing):
        assert decide_job([Outcome.CONSENTED, missing], []) == (
            DecisionKind.NEEDS_CONSENT,
            [missing.value],
        )

    def test_needs_consent_reasons_are_sorted_and_unique(self):
        outcomes = [Outcome.UNENROLLED, Outcome.EXPIRED, Outcome.UNENROLLED, Outcome.CONSENTED]
        assert decide_job(outcomes, []) == (DecisionKind.NEEDS_CONSENT, ["expired", "unenrolled"])

    def test_no_face_found_anywhere_denies(self):
        assert decide_job([], []) == (DecisionKind.DENY, ["no_face_found"])

    @pytest.mark.parametrize("problem", ["rejected_input", "no_face_found"])
    def test_any_input_problem_denies_even_when_everyone_consented(self, problem):
        assert decide_job([Outcome.CONSENTED], [problem]) == (DecisionKind.DENY, [problem])

    def test_input_problems_come_first_then_denials(self):
        kind, reasons = decide_job(
            [Outcome.PROTECTED, Outcome.UNENROLLED],
            ["rejected_input", "no_face_found", "rejected_input"],
        )
        assert kind is DecisionKind.DENY
        assert reasons == ["no_face_found", "rejected_input", "protected"]


class TestAssuranceMinimum:
    """A provider's minimum assurance for the operation (issue 9, item 4): below it a person is
    `assurance_too_low` unless they said no; the job then needs consent, never allow."""

    @staticmethod
    def judged(grants, level, minimum, **kw):
        return judge_person(
            grants,
            protect_only=kw.pop("protect_only", False),
            operation=kw.pop("operation", Operation.FACE_SWAP),
            role=kw.pop("role", Role.SOURCE),
            provider_id=PROVIDER,
            now=NOW,
            assurance=level,
            minimum=minimum,
        )

    @pytest.mark.parametrize(
        ("level", "minimum"),
        [
            (Assurance.UPLOADED, Assurance.UPLOADED),
            (Assurance.LIVE, Assurance.UPLOADED),
            (Assurance.LIVE, Assurance.LIVE),
            (Assurance.REVIEWED, Assurance.LIVE),
            (Assurance.REVIEWED, Assurance.REVIEWED),
            (None, None),
            (Assurance.UPLOADED, None),
        ],
    )
    def test_a_level_that_meets_the_minimum_keeps_the_grant_s_outcome(self, level, minimum):
        g = grant()
        verdict = self.judged([g], level, minimum)
        assert verdict.outcome is Outcome.CONSENTED and verdict.grant is g

    @pytest.mark.parametrize(
        ("level", "minimum"),
        [
            (Assurance.UPLOADED, Assurance.LIVE),
            (Assurance.UPLOADED, Assurance.REVIEWED),
            (Assurance.LIVE, Assurance.REVIEWED),
            (None, Assurance.UPLOADED),  # no level recorded: below every minimum
        ],
    )
    @pytest.mark.parametrize("role", list(Role))
    def test_below_the_minimum_a_grant_in_force_is_not_enough(self, level, minimum, role):
        g = grant()
        verdict = self.judged([g], level, minimum, role=role)
        assert verdict.outcome is Outcome.ASSURANCE_TOO_LOW
        assert verdict.grant is g  # which grant would have applied, for the record

    @pytest.mark.parametrize(
        "grants",
        [[], [grant(status="expired")], [grant(operations=["face_reenactment"])]],
        ids=["no grant", "expired", "not covered"],
    )
    def test_below_the_minimum_nothing_to_ask_is_named_assurance_first(self, grants):
        # A consent request would be answered by the same weakly bound account.
        verdict = self.judged(grants, Assurance.UPLOADED, Assurance.LIVE)
        assert verdict.outcome is Outcome.ASSURANCE_TOO_LOW

    @pytest.mark.parametrize(
        ("grants", "protect_only", "outcome"),
        [
            ([], True, Outcome.PROTECTED),
            ([grant()], True, Outcome.PROTECTED),
            ([grant(status="refused")], False, Outcome.REFUSED),
            ([grant(status="revoked", version=2)], False, Outcome.REVOKED),
        ],
    )
    def test_a_no_is_honoured_whatever_the_assurance(self, grants, protect_only, outcome):
        verdict = self.judged(grants, None, Assurance.REVIEWED, protect_only=protect_only)
        assert verdict.outcome is outcome

    def test_every_operation_applies_its_minimum(self):
        for operation in Operation:
            g = grant(modality=operation.modality.value, operations=[operation.value])
            ok = self.judged([g], Assurance.LIVE, Assurance.LIVE, operation=operation)
            low = self.judged([g], Assurance.UPLOADED, Assurance.LIVE, operation=operation)
            assert (ok.outcome, low.outcome) == (Outcome.CONSENTED, Outcome.ASSURANCE_TOO_LOW)

    def test_the_job_needs_consent_and_names_the_reason(self):
        kind, reasons = decide_job([Outcome.CONSENTED, Outcome.ASSURANCE_TOO_LOW], [])
        assert (kind, reasons) == (DecisionKind.NEEDS_CONSENT, ["assurance_too_low"])
        kind, reasons = decide_job([Outcome.ASSURANCE_TOO_LOW, Outcome.PROTECTED], [])
        assert (kind, reasons) == (DecisionKind.DENY, ["protected"])
        kind, reasons = decide_job([Outcome.ASSURANCE_TOO_LOW, Outcome.UNENROLLED], [])
        assert kind is DecisionKind.NEEDS_CONSENT
        assert reasons == ["assurance_too_low", "unenrolled"]
