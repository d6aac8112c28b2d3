"""The purpose and refusal rules of the gate (issue 13): a job's purpose against the purposes a
grant covers, and an explicit refusal of a provider against every consent."""

from __future__ import annotations

from datetime import timedelta

from consent_service.consent.policy import judge_person
from consent_service.vocabulary import Assurance, Operation, Outcome, Role
from tests.unit.consent.test_policy import NOW, PROVIDER, grant  # one active grant, as there


def judge(grants, *, purpose=None, provider_id=PROVIDER, operation=Operation.FACE_SWAP, **kw):
    return judge_person(
        grants,
        protect_only=False,
        operation=operation,
        role=Role.SOURCE,
        provider_id=provider_id,
        now=NOW,
        purpose=purpose,
        **kw,
    )


def refusal(**overrides):
    """An explicit refusal of PROVIDER, as `consent.service.refuse` writes it."""
    fields = {
        "operations": ["face_attribute_edit", "face_generation", "face_reenactment", "face_swap"],
        "roles": ["source", "target"],
        "status": "refused",
        "refusal": True,
    }
    fields.update(overrides)
    return grant(**fields)


class TestPurposes:
    def test_a_grant_naming_no_purpose_covers_every_purpose_and_none(self):
        g = grant()
        assert judge([g], purpose="advertising").outcome is Outcome.CONSENTED
        assert judge([g], purpose=None).outcome is Outcome.CONSENTED

    def test_a_grant_covers_the_purposes_it_names(self):
        g = grant(purposes=["education", "research"])
        verdict = judge([g], purpose="research")
        assert verdict.outcome is Outcome.CONSENTED and verdict.grant is g
        assert verdict.uncovered_purpose is None

    def test_another_purpose_is_not_covered_and_the_finding_names_it(self):
        verdict = judge([grant(purposes=["education"])], purpose="advertising")
        assert verdict.outcome is Outcome.NOT_COVERED
        assert verdict.grant is None
        assert verdict.uncovered_purpose == "advertising"

    def test_a_job_without_purpose_is_covered_only_by_grants_for_every_purpose(self):
        verdict = judge([grant(purposes=["education"])], purpose=None)
        assert verdict.outcome is Outcome.NOT_COVERED
        assert verdict.uncovered_purpose is None  # it stated no purpose to name

    def test_purpose_is_named_only_when_it_is_the_only_reason(self):
        other_provider = grant(purposes=["education"], provider_ids=["provider-b"])
        verdict = judge([other_provider], purpose="advertising")
        assert verdict.outcome is Outcome.NOT_COVERED and verdict.uncovered_purpose is None
        ended = grant(purposes=["education"], valid_until=NOW - timedelta(days=1))
        assert judge([ended], purpose="advertising").uncovered_purpose is None

    def test_a_revoked_grant_for_other_purposes_does_not_deny_this_one(self):
        revoked = grant(status="revoked", purposes=["advertising"])
        verdict = judge([revoked], purpose="education")
        assert verdict.outcome is Outcome.NOT_COVERED
        assert judge([revoked], purpose="advertising").outcome is Outcome.REVOKED

    def test_one_grant_for_the_purpose_wins_over_one_for_another(self):
        education, advertising = grant(purposes=["education"]), grant(purposes=["advertising"])
        verdict = judge([education, advertising], purpose="advertising")
        assert verdict.outcome is Outcome.CONSENTED and verdict.grant is advertising


class TestRefusals:
    def test_a_refusal_beats_a_grant_to_all_providers(self):
        r = refusal()
        verdict = judge([grant(all_providers=True, provider_ids=[]), r])
        assert verdict.outcome is Outcome.REFUSED and verdict.grant is r

    def test_a_refusal_beats_a_grant_naming_the_provider(self):
        r = refusal()
        assert judge([grant(), r], purpose="education").grant is r

    def test_a_refusal_counts_for_the_provider_and_edit_types_it_names_only(self):
        r = refusal(operations=["face_generation"])
        everyone = grant(all_providers=True, provider_ids=[])
        assert judge([everyone, r]).outcome is Outcome.CONSENTED  # face_swap not refused
        assert judge([everyone, r], operation=Operation.FACE_GENERATION).outcome is (
            Outcome.REFUSED
        )
        elsewhere = refusal(provider_ids=["provider-b"])
        assert judge([everyone, elsewhere]).outcome is Outcome.CONSENTED

    def test_a_withdrawn_refusal_stops_denying_and_is_no_revocation(self):
        withdrawn = refusal(status="revoked", version=2)
        assert judge([withdrawn]).outcome is Outcome.NOT_COVERED
        assert judge([withdrawn]).grant is None
        assert judge([withdrawn, grant()]).outcome is Outcome.CONSENTED

    def test_a_refusal_is_honoured_whatever_the_assurance(self):
        verdict = judge([refusal()], assurance=Assurance.UPLOADED, minimum=Assurance.REVIEWED)
        assert verdict.outcome is Outcome.REFUSED
