"""The API shape of the decision-signing keys: the JWKS document. (Verifying a token and its
status: `gate.schemas`.)"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PublicJwk(BaseModel):
    """One public key, exactly the members `DecisionKey.public_jwk` writes."""

    model_config = ConfigDict(extra="forbid")

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str = Field(description="The public key, base64url.")
    kid: str
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class Jwks(BaseModel):
    """Every key that signed or signs decision tokens (RFC 7517 JWK Set)."""

    model_config = ConfigDict(extra="forbid")

    keys: list[PublicJwk]
