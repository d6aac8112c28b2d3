"""Consent receipts: one per grant version (given, withdrawn, expired, refused), with the field
names of the Kantara Consent Receipt v1.1 and of ISO/IEC TS 27560. Plain data. Writing a version
registers its signing (`request_signing`); a worker signs and keeps it (`rights.receipts`: only
workers hold the signing keys, and consent sits beside `tokens`, never above it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from consent_service import db
from consent_service.accounts.models import Subject
from consent_service.consent.models import ConsentGrant
from consent_service.consent.notice import notice_digest
from consent_service.rows import row_id
from consent_service.settings import Settings
from consent_service.timeutil import as_utc
from consent_service.vocabulary import GrantStatus

KANTARA_VERSION = "KI-CR-v1.1.0"
ISO_SCHEMA = "ISO/IEC TS 27560:2023"
# The worker's task that signs one version's receipt (rights/tasks.py), sent by name.
SIGN_RECEIPT = "receipts.sign"
# Receipt ids are derived from (grant id, version): signing twice gives the same receipt id.
_RECEIPT_NAMESPACE = uuid.UUID("6f1d8a52-0f7e-4d0b-9c36-2b8f5a7e4c11")

_EVENT_STATE = {
    GrantStatus.ACTIVE.value: "consent given",
    GrantStatus.REVOKED.value: "consent withdrawn",
    GrantStatus.EXPIRED.value: "consent expired",
    GrantStatus.REFUSED.value: "consent refused",
}
_DATA_CATEGORY = {"face": "face template", "voice": "voice template"}
_PURPOSE_TYPE = "editing of biometric information (deep synthesis)"
_LAWFUL_BASIS = (
    "separate consent of the person edited (Deep Synthesis Provisions Art. 14; PIPL Arts. 28-29)"
)
_STORAGE = "controller's registry; templates encrypted at rest"
_RETENTION = (
    "templates kept until the account is deleted, or the last grant is withdrawn if the person "
    "chose so; consent records kept as evidence"
)


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
    if row.actor.startswith("system:"):
        return f"recorded by the service ({row.actor.removeprefix('system:')})"
    return row.identity_method or "unspecified"


def build_receipt(
    row: ConsentGrant,
    subject: Subject,
    provider_names: dict[str, str],
    controller: Controller,
    base_url: str,
) -> dict[str, Any]:
    """The content of the receipt of one grant version: the Kantara CR v1.1 fields at the top
    level, the same consent as an ISO/IEC TS 27560 record under `iso27560`, and the grant version
    it is about under `grant`. `base_url` is where the person manages consent."""
    base = base_url.rstrip("/")
    at = as_utc(row.created_at)
    rid = receipt_id(row.grant_id, row.version)
    recipients = (
        [{"id": "*", "name": "all providers"}]
        if row.all_providers
        else [
            {"id": p, "name": provider_names.get(p, "(removed provider)")} for p in row.provider_ids
        ]
    )
    data_category = _DATA_CATEGORY.get(row.modality, row.modality)
    valid_from = as_utc(row.valid_from).isoformat()
    valid_until = as_utc(row.valid_until).isoformat() if row.valid_until else None
    purpose = row.purpose or "(no purpose given)"
    # The purpose codes of the operator's vocabulary the grant covers (a refusal: every one);
    # the category list Kantara gives each purpose is where they go, after the kind of
    # processing.
    covered = list(row.purposes) or ["every purpose"]
    notice_url = f"{base}/grants/new"
    withdraw = (
        f"Select “Withdraw refusal” next to this refusal at {base}/ (one click); effective for "
        "every check after that moment."
        if row.refusal
        else f"Select “Revoke” next to this grant at {base}/ (one click); effective for every "
        "check after that moment."
    )
    event_state = (
        "refusal withdrawn"
        if row.refusal and row.status == GrantStatus.REVOKED.value
        else _EVENT_STATE.get(row.status, row.status)
    )
    # PIPL Art. 31: for a child under 14 the guardian consents; the receipt says who.
    guardian = (
        {
            "reference": row.guardian.get("reference"),
            "relationship": row.guardian.get("relationship"),
            "declared_at": row.guardian.get("declared_at"),
        }
        if row.guardian
        else None
    )
    method = collection_method(row)
    return {
        # Kantara Consent Receipt v1.1
        "version": KANTARA_VERSION,
        "jurisdiction": controller.jurisdiction,
        "consentTimestamp": int(at.timestamp()),
        "collectionMethod": method,
        "consentReceiptID": rid,
        "language": row.language,
        "piiPrincipalId": subject.public_id,
        "piiControllers": [
            {
                "piiController": controller.name,
                "onBehalf": False,
                "contact": controller.contact,
                "piiControllerUrl": f"{base}/",
            }
        ],
        "policyUrl": notice_url,
        "services": [
            {
                "service": "consent to edits of my "
                + ("face" if row.modality == "face" else "voice"),
                "purposes": [
                    {
                        "purpose": purpose,
                        "purposeCategory": [_PURPOSE_TYPE, *covered],
                        "consentType": "EXPLICIT",
                        "piiCategory": [data_category],
                        "primaryPurpose": True,
                        "termination": (
                            f"{valid_until} or when withdrawn" if valid_until else "when withdrawn"
                        ),
                        "thirdPartyDisclosure": True,
                        "thirdPartyName": ", ".join(r["name"] for r in recipients),
                    }
                ],
            }
        ],
        "sensitive": True,
        "spiCat": ["biometric"],
        # ISO/IEC TS 27560: the same consent as a record (header, processing, parties, events)
        "iso27560": {
            "schema_version": ISO_SCHEMA,
            "record_id": row.grant_id,
            "receipt_id": rid,
            "pii_principal_id": subject.public_id,
            "privacy_notice": {
                "id": "separate-consent-biometric-editing",
                "version": row.notice_version,
                "language": row.language,
                "sha256": notice_digest(row.notice_version, row.language),
                "url": notice_url,
            },
            "language": row.language,
            "purposes": [
                {
                    "purpose": purpose,
                    "purpose_type": _PURPOSE_TYPE,
                    "purpose_categories": covered,
                    "lawful_basis": _LAWFUL_BASIS,
                    "pii_information": [
                        {
                            "pii_type": data_category,
                            "pii_optional": False,
                            "sensitive_pii_category": "biometric",
                        }
                    ],
                    "pii_controllers": ["controller"],
                    "collection_method": method,
                    "processing_method": {
                        "modality": row.modality,
                        "edit_types": list(row.operations),
                        "roles": list(row.roles),
                    },
                    "storage_locations": _STORAGE,
                    "retention_period": _RETENTION,
                    "jurisdiction": controller.jurisdiction,
                    "recipient_third_parties": recipients,
                    "withdrawal_method": withdraw,
                    "privacy_rights": [
                        f"access and copy: {base}/account/export.json",
                        f"erasure: {base}/account/delete",
                    ],
                }
            ],
            "parties": [
                {
                    "party_id": "controller",
                    "party_name": controller.name,
                    "party_contact": controller.contact,
                    "party_url": f"{base}/",
                    "party_role": "controller",
                }
            ],
            "events": [
                {
                    "event_time": at.isoformat(),
                    "validity_duration": {"from": valid_from, "until": valid_until},
                    "entity_id": guardian["reference"] if guardian else subject.public_id,
                    "event_type": "explicit consent",
                    "event_state": event_state,
                }
            ],
        },
        # The grant version this receipt is about, as the service records it.
        "grant": {
            "grant_id": row.grant_id,
            "version": row.version,
            "status": row.status,
            "refusal": row.refusal,
            "purposes": list(row.purposes),
            "guardian": guardian,
        },
    }


# ---------------------------------------------------------------------------- signing
def request_signing(session: Session, row: ConsentGrant) -> None:
    """Have a worker sign this (flushed) grant version's receipt once it is committed
    (`rights.tasks`); the receipts sweep catches any whose task was lost."""
    db.publish(session, SIGN_RECEIPT, str(row_id(row)))
