"""The API shapes of the audit log's checkpoints and proofs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class CheckpointQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    from_size: int | None = Field(
        default=None,
        alias="from",
        ge=0,
        description="A size you hold a checkpoint of: the answer adds the RFC 9162 consistency "
        "proof from that size to this checkpoint's.",
    )
    entry: int | None = Field(
        default=None,
        ge=1,
        description="An entry's sequence number: the answer adds the RFC 9162 inclusion proof "
        "of that entry in this checkpoint's tree.",
    )


class ConsistencyProof(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first: int = Field(description="The size you hold.")
    second: int = Field(description="This checkpoint's size.")
    proof: list[str] = Field(description="Node hashes, base64, in RFC 9162 2.1.4 order.")


class InclusionProof(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entry: int
    leaf_index: int = Field(description="entry - 1")
    size: int
    leaf_hash: str = Field(description="SHA-256(0x00 || canonical entry), base64.")
    proof: list[str] = Field(description="Node hashes, base64, in RFC 9162 2.1.3 order.")


class CheckpointDocument(BaseModel):
    """The newest signed checkpoint of the audit log."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str = Field(
        description="The signed note (C2SP signed-note format): origin, size, base64 root, "
        "`timestamp <unix seconds>`, a blank line, `— <origin> <base64(key id || Ed25519 sig)>`."
    )
    origin: str
    size: int
    root: str = Field(description="The RFC 9162 tree head, base64.")
    timestamp: datetime
    verifier_key: str = Field(
        description="The signing key as `<name>+<key id hex>+<base64(0x01 || public key)>`: "
        "pin it once, from a trusted channel; a checkpoint signed by another key is not ours."
    )
    verifier_keys: list[str] = Field(
        description="Every checkpoint key's verifier key, in the same form, oldest first (the "
        "last signs now): checkpoints signed before a key rotation verify with the older ones."
    )
    consistency: ConsistencyProof | None = None
    inclusion: InclusionProof | None = None
