"""C2PA manifests (c2pa-python, the Content Authenticity Initiative's library over c2pa-rs):
signing one into a JPEG, PNG or MP4 with the consent and AIGC assertions, and reading one back
with its validation state. c2pa-python loads its native library on first use only."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

from consent_service.labels.credentials import LabelCredentials

# Our assertions, named in reverse-domain form as C2PA asks of assertions it does not define.
CONSENT_ASSERTION = "org.consent-service.consent"
# GB 45438-2025's AIGC object, by TC260 (tc260.org.cn), for files without XMP of their own (MP4).
AIGC_ASSERTION = "cn.org.tc260.aigc"
# IPTC's term for media edited with a trained model (a face swap, a reenactment, a cloned voice).
DIGITAL_SOURCE_TYPE = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
)
MEDIA_TYPES = ("image/jpeg", "image/png", "video/mp4")


@dataclass(frozen=True)
class Manifest:
    """The active manifest of a file, as c2pa-python reads it."""

    assertions: dict[str, Any]  # label -> data
    validation_state: str  # "Invalid", "Valid" or "Trusted" (c2pa-rs)
    failures: list[str] = field(default_factory=list)  # validation codes, e.g. untrusted signer
    signer: str = ""  # the signing certificate's issuer, as c2pa-rs reports it


def sign(
    data: bytes,
    media_type: str,
    assertions: dict[str, Any],
    credentials: LabelCredentials,
    *,
    title: str,
    generator: tuple[str, str],
) -> bytes:
    """`data` with a C2PA manifest: a `c2pa.created` action (a composite made with a trained
    model) and each of `assertions`, signed with `credentials` (no timestamp authority: the
    service makes no calls out when it labels)."""
    import c2pa  # here: its native library loads only in a process that labels or reads

    manifest = {
        "claim_generator_info": [{"name": generator[0], "version": generator[1]}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {"action": "c2pa.created", "digitalSourceType": DIGITAL_SOURCE_TYPE}
                    ]
                },
            },
            *({"label": label, "data": value} for label, value in assertions.items()),
        ],
    }
    info = c2pa.C2paSignerInfo(
        credentials.algorithm.encode(), credentials.chain_pem, credentials.key_pem, None
    )
    out = io.BytesIO()
    with c2pa.Signer.from_info(info) as signer, c2pa.Builder(manifest) as builder:
        builder.sign(signer, media_type, io.BytesIO(data), out)
    return out.getvalue()


def read(data: bytes, media_type: str) -> Manifest | None:
    """The file's active manifest, or None when it carries no C2PA data."""
    import c2pa

    try:
        reader = c2pa.Reader.try_create(media_type, io.BytesIO(data))
    except c2pa.C2paError:
        return None  # unreadable C2PA data is no label to show
    if reader is None:
        return None
    with reader:
        active = reader.get_active_manifest() or {}
        results = reader.get_validation_results() or {}
        state = reader.get_validation_state() or "Invalid"
    failures = [
        str(entry.get("code")) for entry in (results.get("activeManifest") or {}).get("failure", [])
    ]
    return Manifest(
        assertions={a["label"]: a.get("data") for a in active.get("assertions", [])},
        validation_state=state,
        failures=failures,
        signer=str((active.get("signature_info") or {}).get("issuer", "")),
    )


def manifest_json(data: bytes, media_type: str) -> dict[str, Any] | None:
    """The whole manifest store as c2pa-python prints it (for `label read --json`)."""
    import c2pa

    reader = c2pa.Reader.try_create(media_type, io.BytesIO(data))
    if reader is None:
        return None
    with reader:
        return json.loads(reader.json())
