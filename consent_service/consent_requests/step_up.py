"""Approving a consent request waits for the person's live step-up check, like a grant: the
answer is written down as a step-up action (`accounts.step_up`) and carried out here, in the
worker's transaction, once the check matched the account's enrolled face (voice for a voice
request). `service.approve` then checks the person against the request as it always did."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from consent_service.accounts import step_up as step_ups
from consent_service.accounts.models import StepUp, Subject, User
from consent_service.consent import service as consent
from consent_service.consent_requests import service
from consent_service.consent_requests.models import ConsentRequest
from consent_service.crypto import KeySource
from consent_service.errors import InvalidRequest
from consent_service.runtime import services

KIND = "consent_request"


def payload(
    req: ConsentRequest, subject: Subject, evidence: consent.Evidence, summary: str
) -> dict[str, Any]:
    return {
        "request_id": req.id,
        "subject_id": subject.id,
        "summary": summary,
        "evidence": {
            "actor": evidence.actor,
            "language": evidence.language,
            "ip": evidence.ip,
            "user_agent": evidence.user_agent,
            "notice_version": evidence.notice_version,
            "guardian": evidence.guardian,
        },
    }


@step_ups.step_up_passed.connect_via(KIND)
def carry_out_approval(
    _kind: str,
    *,
    session: Session,
    step_up: StepUp,
    proof: dict[str, Any],
    audit_key: KeySource,
) -> dict[str, Any]:
    """The receiver for consent requests: approve as the page asked, the live check as the
    grant's evidence."""
    data = step_up.payload
    req = session.get(ConsentRequest, data["request_id"])
    user = session.get(User, step_up.user_id)
    subject = session.get(Subject, int(data["subject_id"]))
    if req is None or user is None or subject is None:
        raise InvalidRequest(step_ups.NOT_CARRIED_OUT)
    svc = services()
    evidence = consent.Evidence(
        **data["evidence"],
        identity_method=str(proof["method"])[:64],
        identity_evidence={**proof, "consent_request_id": req.id},
    )
    done = service.approve(
        session,
        svc.envelope,
        audit_key,
        req,
        user,
        subject,
        service.Tolerances(svc.settings.face_tolerance, svc.settings.voice_tolerance),
        evidence,
        service.Gate(svc.decision_signer, svc.pseudonyms),
    )
    return {"consent_request_id": done.id, "grant_id": done.grant_id}
