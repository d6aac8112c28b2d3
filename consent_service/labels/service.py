"""Labels that travel with an edited file: GB 45438's `AIGC` object (XMP in images; a C2PA
assertion too, the only place an MP4 carries it) and a signed C2PA manifest with a consent
assertion (decision, operation, the token's SHA-256, its public status URL). Whoever holds the
file reads the label and asks the decision's status by that digest: the label names no person,
and the token itself stays with the provider.

Plain functions: the provider API, the `label` commands and the public check page call them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlmodel import Session

from consent_service.errors import DomainError, MediaRejected, NotFound
from consent_service.gate import status
from consent_service.gate.claims import aigc_label, token_digest
from consent_service.gate.models import DecisionRevision, GateJob
from consent_service.gate.schemas import DecisionStatus
from consent_service.gate.service import find_job
from consent_service.labels import provenance, xmp
from consent_service.labels.credentials import LabelCredentials, LabelCredentialsError
from consent_service.labels.provenance import AIGC_ASSERTION, CONSENT_ASSERTION, Manifest
from consent_service.providers.models import Provider, ProviderRef
from consent_service.settings import InsecureSettings
from consent_service.timeutil import as_utc
from consent_service.tokens.service import verify_token
from consent_service.vocabulary import DecisionKind, DecisionStanding

log = logging.getLogger(__name__)
GENERATOR = "consent-service"
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "video/mp4": "mp4"}


class LabelRefused(DomainError):
    """A label this service will not write: the decision is no `allow`, or no longer stands."""

    status = 409
    title = "Label refused"


class LabelSigningUnavailable(DomainError):
    """No usable certificate to sign labels with (LABEL_CERT/LABEL_KEY missing or unreadable)."""

    status = 503
    title = "Label signing unavailable"


def signing_credentials(load: Callable[[], LabelCredentials]) -> LabelCredentials:
    """The label credentials `load` gives, or LabelSigningUnavailable (the cause logged) when
    there are none: a misconfiguration the caller can only report, not a crash."""
    try:
        return load()
    except (InsecureSettings, LabelCredentialsError) as exc:
        log.error("labels cannot be signed: %s", exc)
        raise LabelSigningUnavailable(
            "Labels cannot be signed here: the service has no label certificate configured."
        ) from exc


@dataclass(frozen=True)
class Label:
    """What goes into a file: the `AIGC` object and the consent assertion."""

    aigc: dict[str, Any]  # the seven GB 45438 fields
    consent: dict[str, Any]  # decision, operation, token_sha256, status_url, issued_at


@dataclass(frozen=True)
class FoundLabel:
    """What a file carries, as read; `digest` is the token SHA-256 to ask the status of."""

    media_type: str
    aigc: dict[str, Any] | None
    aigc_in: str  # "xmp", "c2pa" or "" (none found)
    consent: dict[str, Any] | None
    manifest: Manifest | None

    @property
    def digest(self) -> str | None:
        code = (self.aigc or {}).get("ReservedCode1") or (self.consent or {}).get("token_sha256")
        return code if isinstance(code, str) and code else None

    @property
    def consistent(self) -> bool:
        """The XMP label and the signed consent assertion name the same token (a copied-over
        XMP label with another file's manifest does not)."""
        if self.aigc is None or self.consent is None:
            return True
        return self.aigc.get("ReservedCode1") == self.consent.get("token_sha256")

    @property
    def signed(self) -> bool:
        """A C2PA manifest whose signature and hashes check out (trusted signer or not)."""
        return self.manifest is not None and self.manifest.validation_state in ("Valid", "Trusted")


def media_type_of(data: bytes) -> str:
    """The type of an uploaded file, from its bytes: JPEG, PNG or MP4; MediaRejected otherwise."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(xmp.PNG_SIGNATURE):
        return "image/png"
    if data[4:8] == b"ftyp" and data[8:10] != b"qt":
        return "video/mp4"
    raise MediaRejected("Labels go into JPEG, PNG or MP4 files; this is none of them.")


def status_url(public_url: str, digest: str) -> str:
    return f"{public_url.rstrip('/')}/api/v1/decisions/{digest}/status"


def label_for_revision(
    session: Session, revision: DecisionRevision, public_url: str, now: datetime
) -> Label:
    """The label of an `allow` that still stands; LabelRefused for any other decision."""
    if revision.decision != DecisionKind.ALLOW.value or not revision.token:
        raise LabelRefused(
            "Only an allowed edit gets a label; this decision is %(decision)s.",
            decision=revision.decision,
        )
    standing = status.standing(session, revision, now)
    if standing.status is not DecisionStanding.VALID:
        raise LabelRefused(
            "This decision no longer stands (%(status)s): it gets no label.",
            status=standing.status.value,
        )
    job = session.get(GateJob, revision.job_id)
    assert job is not None  # a revision belongs to a job
    provider = session.get(Provider, job.provider_id)
    assert provider is not None  # a job's provider is never deleted
    digest = revision.token_sha256 or token_digest(revision.token)
    return Label(
        aigc=aigc_label(provider.name, job.id, digest)["AIGC"],
        consent={
            "decision": revision.decision,
            "operation": job.operation,
            "token_sha256": digest,
            "status_url": status_url(public_url, digest),
            "issued_at": as_utc(revision.created_at).isoformat(),
        },
    )


def label_for_job(
    session: Session, provider: ProviderRef, job_id: str, public_url: str, now: datetime
) -> Label:
    """The label of a provider's own job's current decision (NotFound for another's job)."""
    _, decision = find_job(session, provider, job_id)
    if decision is None or not decision.token:
        raise LabelRefused("This job is not decided yet: it gets no label.")
    return label_for_revision(
        session, status.find_revision(session, token_digest(decision.token)), public_url, now
    )


def label_for_token(
    session: Session,
    token: str,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    issuer: str,
    public_url: str,
    now: datetime,
) -> Label:
    """The label of the decision a token signs: the token must verify (an expired one will do:
    its status is checked), and be one this service recorded."""
    claims, _ = verify_token(token.strip(), keys, issuer=issuer, allow_expired=True)
    revision = status.revision_of_claims(session, claims)
    if revision is None:
        raise NotFound("No such decision token.")
    return label_for_revision(session, revision, public_url, now)


def embed(
    data: bytes, label: Label, credentials: LabelCredentials, *, title: str
) -> tuple[bytes, str]:
    """`data` with the label: images get the `AIGC` XMP first, then the C2PA manifest (which
    hashes the file with its XMP); an MP4 gets the manifest only. (bytes, media type)."""
    media_type = media_type_of(data)
    if media_type != "video/mp4":
        try:
            data = xmp.embed(data, label.aigc)
        except xmp.XmpError as exc:
            raise MediaRejected("This file cannot carry a label: %(why)s.", why=str(exc)) from None
    assertions = {CONSENT_ASSERTION: label.consent, AIGC_ASSERTION: {"AIGC": label.aigc}}
    signed = provenance.sign(
        data,
        media_type,
        assertions,
        credentials,
        title=title,
        generator=(GENERATOR, version("consent-service")),
    )
    return signed, media_type


def read(data: bytes) -> FoundLabel:
    """The label a file carries, wherever it is (XMP first for the `AIGC` object, as GB 45438
    asks; the manifest's copy otherwise)."""
    media_type = media_type_of(data)
    try:
        from_xmp = xmp.read(data) if media_type != "video/mp4" else None
    except xmp.XmpError:
        from_xmp = None
    manifest = provenance.read(data, media_type)
    assertions = manifest.assertions if manifest is not None else {}
    in_manifest = assertions.get(AIGC_ASSERTION)
    from_c2pa = in_manifest.get("AIGC") if isinstance(in_manifest, dict) else None
    aigc = from_xmp or (from_c2pa if isinstance(from_c2pa, dict) else None)
    consent = assertions.get(CONSENT_ASSERTION)
    return FoundLabel(
        media_type=media_type,
        aigc=aigc,
        aigc_in="xmp" if from_xmp else ("c2pa" if aigc else ""),
        consent=consent if isinstance(consent, dict) else None,
        manifest=manifest,
    )


def status_of(session: Session, digest: str, now: datetime) -> DecisionStatus | None:
    """The public status of the decision a label names (None: no decision of this service)."""
    try:
        revision = status.find_revision(session, digest)
    except NotFound:
        return None
    return status.status_view(status.standing(session, revision, now), now)
