"""A grant waits for the granter's live step-up check: the form's request and evidence are
written down as a step-up action (`accounts.step_up`), and carried out here, in the worker's
transaction, once the check's face (or voice) matched the account's enrolled templates. The
grant's evidence then names the live session, its scores and the method."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from consent_service.accounts import step_up as step_ups
from consent_service.accounts.models import StepUp
from consent_service.consent import service
from consent_service.crypto import KeySource
from consent_service.vocabulary import Modality, Operation, Role

KIND = "grant"


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def payload(
    subject_id: int, req: service.GrantRequest, evidence: service.Evidence, summary: str
) -> dict[str, Any]:
    """What carrying out the grant needs, as JSON (`summary`: what the page shows)."""
    return {
        "subject_id": subject_id,
        "summary": summary,
        "request": {
            "operations": [op.value for op in req.operations],
            "roles": [r.value for r in req.roles],
            "all_providers": req.all_providers,
            "provider_ids": list(req.provider_ids),
            "purpose": req.purpose,
            "purposes": list(req.purposes),
            "valid_from": _when(req.valid_from),
            "valid_until": _when(req.valid_until),
            "modality": req.modality.value if req.modality else None,
        },
        "evidence": {
            "actor": evidence.actor,
            "language": evidence.language,
            "ip": evidence.ip,
            "user_agent": evidence.user_agent,
            "notice_version": evidence.notice_version,
            "guardian": evidence.guardian,
        },
    }


def request_of(data: dict[str, Any]) -> service.GrantRequest:
    return service.GrantRequest(
        operations=[Operation(o) for o in data["operations"]],
        roles=[Role(r) for r in data["roles"]],
        all_providers=bool(data["all_providers"]),
        provider_ids=list(data["provider_ids"]),
        purpose=data.get("purpose") or "",
        valid_from=_parse(data.get("valid_from")),
        valid_until=_parse(data.get("valid_until")),
        modality=Modality(data["modality"]) if data.get("modality") else None,
        # Actions written down before purposes were checked cover every purpose, as they asked.
        purposes=list(data.get("purposes") or []),
    )


@step_ups.step_up_passed.connect_via(KIND)
def carry_out_grant(
    _kind: str,
    *,
    session: Session,
    step_up: StepUp,
    proof: dict[str, Any],
    audit_key: KeySource,
) -> dict[str, Any]:
    """The receiver for grants: grant what the form asked, the live check as its evidence."""
    data = step_up.payload
    evidence = service.Evidence(
        **data["evidence"], identity_method=str(proof["method"])[:64], identity_evidence=proof
    )
    row = service.grant(
        session, audit_key, int(data["subject_id"]), request_of(data["request"]), evidence
    )
    return {"grant_id": row.grant_id, "version": row.version}
