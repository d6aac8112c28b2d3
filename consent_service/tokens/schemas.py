"""The API shapes of decision tokens: the JWKS document and the verify endpoint."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from consent_service.tokens.service import MAX_TOKEN_LENGTH


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


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(
        min_length=1, max_length=MAX_TOKEN_LENGTH, description="A decision token (compact JWS)."
    )
    audience: str | None = Field(
        default=None,
        max_length=64,
        description="If given, the provider id the token must have been issued to (`aud`).",
    )


class VerifyResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valid: Literal[True]
    kid: str = Field(description="The key that signed the token.")
    claims: dict[str, Any] = Field(
        description="iss, aud (provider id), sub (job id), iat, exp, jti, decision, reasons, "
        "operation, assurance_required (the provider's minimum assurance for the operation, or "
        "null), media (sha256 per item), findings (pseudonymous subject_ref, grant id and "
        "version, and assurance level per person)."
    )
