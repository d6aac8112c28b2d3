"""Consent receipts: one per grant version (given, withdrawn, expired), with the fields of
ISO/IEC TS 27560 and the Kantara Consent Receipt v1.1. Plain data; the view makes it a download."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from consent_service.accounts.models import Subject
from consent_service.consent.models import ConsentGrant
from consent_service.consent.notice import notice_digest
from consent_service.settings import Settings
from consent_service.timeutil import as_utc
from consent_service.vocabulary import GrantStatus

RECEIPT_SCHEMA = "ISO/IEC TS 27560:2023; Kantara Consent Receipt v1.1"
# Receipt ids are derived from (grant id, version): downloading twice gives the same receipt.
_RECEIPT_NAMESPACE = uuid.UUID("6f1d8a52-0f7e-4d0b-9c36-2b8f5a7e4c11")

_EVENT = {
    GrantStatus.ACTIVE.value: "given",
    GrantStatus.REVOKED.value: "withdrawn",
    GrantStatus.EXPIRED.value: "expired",
    GrantStatus.REFUSED.value: "refused",
}
_DATA_CATEGORY = {"face": "face template", "voice": "voice template"}


@dataclass(frozen=True)
class Controller:
    name: str
    contact: str
    jurisdiction: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Controller:
        return cls(
            settings.controller_name,
            settings.controller_contact,
            settings.controller_jurisdiction,
        )


def receipt_id(grant_id: str, version: int) -> str:
    return str(uuid.uuid5(_RECEIPT_NAMESPACE, f"{grant_id}:{version}"))


def collection_method(row: ConsentGrant) -> str:
    if row.identity_evidence:  # given after a live step-up check of the granter
        proof = row.identity_evidence
        checked = (
            f"confirmed by a live check of the granter ({row.identity_method}, live session "
            f"{proof.get('live_session_id')})"
        )
        who = (
            "the signed-in guardian of a child under 14"
            if row.guardian
            else ("signed-in account holder")
        )
        if proof.get("consent_request_id"):
            return f"consent request {proof['consent_request_id']}: approved by {who}, {checked}"
        return f"web form: separate consent page, unticked box, {who}, {checked}"
    if row.guardian and row.identity_method == "password-session":
        return (
            "web form: separate consent page, unticked box, given by the signed-in guardian "
            "of a child under 14"
        )
    if row.guardian and row.identity_method.startswith("consent request "):
        return f"{row.identity_method}: approved by the signed-in guardian of a child under 14"
    if row.actor.startswith("user:") and row.identity_method == "password-session":
        return "web form: separate consent page, unticked box, signed-in account holder"
    if row.actor.startswith("operator:"):
        return f"recorded by an operator ({row.identity_method})"
    return row.identity_method or "unspecified"


def build_receipt(
    row: ConsentGrant,
    subject: Subject,
    provider_names: dict[str, str],
    controller: Controller,
    base_url: str,
) -> dict:
    """The receipt of one grant version. `base_url` is where the person manages consent."""
    base = base_url.rstrip("/")
    event = _EVENT.get(row.status, row.status)
    at = as_utc(row.created_at).isoformat()
    recipients = (
        [{"id": "*", "name": "all providers"}]
        if row.all_providers
        else [
            {"id": p, "name": provider_names.get(p, "(removed provider)")} for p in row.provider_ids
        ]
    )
    data_category = _DATA_CATEGORY.get(row.modality, row.modality)
    return {
        "schema_version": RECEIPT_SCHEMA,
        "receipt_id": receipt_id(row.grant_id, row.version),
        "record_id": row.grant_id,
        "record_version": row.version,
        "issued_at": at,
        "language": row.language,
        "jurisdiction": controller.jurisdiction,
        "controllers": [
            {"name": controller.name, "contact": controller.contact, "on_behalf": False}
        ],
        "subject_reference": subject.public_id,
        # PIPL Art. 31: for a child under 14 the guardian consents; the receipt says who.
        "guardian": (
            {
                "reference": row.guardian.get("reference"),
                "relationship": row.guardian.get("relationship"),
                "declared_at": row.guardian.get("declared_at"),
            }
            if row.guardian
            else None
        ),
        "notice": {
            "id": "separate-consent-biometric-editing",
            "version": row.notice_version,
            "language": row.language,
            "sha256": notice_digest(row.notice_version, row.language),
            "url": f"{base}/grants/new",
        },
        "purposes": [
            {
                "purpose": row.purpose or "(no purpose given)",
                "purpose_category": "editing of biometric information (deep synthesis)",
                "consent_type": "separate explicit consent",
                "primary_purpose": True,
            }
        ],
        "data_categories": [data_category],
        "sensitive": True,
        "sensitive_categories": ["biometric"],
        "processing": {
            "modality": row.modality,
            "edit_types": list(row.operations),
            "roles": list(row.roles),
        },
        "recipients": recipients,
        "storage_location": "controller's registry; templates encrypted at rest",
        "retention": "templates kept until the account is deleted; consent records kept as "
        "evidence",
        "method_of_collection": collection_method(row),
        "event": {"type": event, "time": at},
        "status": row.status,
        "validity": {
            "from": as_utc(row.valid_from).isoformat(),
            "until": as_utc(row.valid_until).isoformat() if row.valid_until else None,
        },
        "how_to_withdraw": f"Select “Revoke” next to this grant at {base}/ (one click); "
        "effective for every check after that moment.",
    }
