"""What a decision says about itself: the signed token's claims, the pseudonymous subject
reference a provider sees, and the AIGC label an allowed edit's output carries."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from consent_service.accounts.models import Subject
from consent_service.gate.models import Finding, GateJob, MediaItem
from consent_service.keyring import Pseudonyms
from consent_service.tokens.service import decision_claims
from consent_service.vocabulary import Assurance


def subject_reference(pseudonyms: Pseudonyms, provider_id: str, subject: Subject) -> str:
    """Stable per provider, unlinkable across providers, reveals nothing about the person; the
    same across every rotation of the pseudonym key (`keyring.Pseudonyms`)."""
    return reference(pseudonyms, provider_id, subject.public_id, subject.created_at)


def reference(
    pseudonyms: Pseudonyms, provider_id: str, public_id: str, created_at: datetime
) -> str:
    """`subject_reference` from the subject's columns alone (the poll reads plain rows)."""
    return pseudonyms.ref(provider_id, public_id, created_at)


def token_claims(
    job: GateJob,
    decision: str,
    reasons: list[str],
    items: list[MediaItem],
    findings: list[Finding],
    subjects: dict[int, Subject],
    pseudonyms: Pseudonyms,
    assurance_required: Assurance | None = None,
) -> dict[str, Any]:
    """The decision token's claims: the job as `job_view` shows it, minus boxes and file names;
    with the provider's minimum assurance for the operation and each named person's level."""
    return decision_claims(
        job_id=job.id,
        provider_id=job.provider_id,
        operation=job.operation,
        purpose=job.purpose,
        decision=decision,
        reasons=reasons,
        media=[{"position": i.position, "role": i.role, "sha256": i.sha256} for i in items],
        assurance_required=assurance_required.value if assurance_required else None,
        findings=[
            {
                "media": f.media_position,
                "role": f.role,
                "outcome": f.outcome,
                "subject_ref": (
                    subject_reference(pseudonyms, job.provider_id, subjects[f.subject_id])
                    if f.subject_id in subjects
                    else None
                ),
                "grant_id": f.grant_id,
                "grant_version": f.grant_version,
                "assurance": f.assurance,
            }
            for f in findings
        ],
    )


def token_digest(token: str) -> str:
    """The SHA-256 (hex) of a compact decision token: a name for it that reveals nothing of its
    claims, which its public status URL accepts like the token id."""
    return hashlib.sha256(token.encode()).hexdigest()


def aigc_label(provider_name: str, job_id: str, token_sha256: str) -> dict[str, Any]:
    """GB 45438-2025's implicit label for the output of an allowed edit, to embed in its metadata
    under `AIGC`: generated content (Label 1), by this provider, traceable to this job and, by
    `ReservedCode1`, to the decision token (its SHA-256, which the public status URL accepts and
    which reveals none of the token's claims). The distributing platform fills the Propagate
    fields and `ReservedCode2`; they are present and empty, as the standard lists seven."""
    return {
        "AIGC": {
            "Label": "1",
            "ContentProducer": provider_name,
            "ProduceID": job_id,
            "ReservedCode1": token_sha256,
            "ContentPropagator": "",
            "PropagateID": "",
            "ReservedCode2": "",
        }
    }
