"""Decision tokens on the web: the public keys (JWKS) and a verify endpoint anyone may call."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from consent_service.api_contract import idempotency, ratelimit
from consent_service.api_contract.operations import api_operation
from consent_service.runtime import services
from consent_service.tokens import service
from consent_service.tokens.schemas import Jwks, VerifyRequest, VerifyResult

bp = Blueprint("tokens", __name__)

# Verifiers cache the key set this long; a staged rotation (`tokens rotate --activate-in`)
# should publish a new key at least this long before it signs.
JWKS_MAX_AGE = 300


@bp.get("/.well-known/jwks.json")
@api_operation(
    "The decision-signing public keys",
    description="A JWK Set of the Ed25519 keys that sign decision tokens, old and new; pick "
    "the key by the token's `kid`.",
    responses={200: Jwks},
    authenticated=False,
    tags=("decisions",),
)
def jwks() -> Response:
    response = jsonify(Jwks.model_validate(services().decision_keys.jwks()).model_dump())
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    return response


@bp.post("/api/v1/decisions/verify")
@api_operation(
    "Verify a decision token",
    description="No API key: whoever holds an edited file (a platform, a person, a regulator) "
    "may check the decision behind it. 200 with the claims when the token is valid; 422 with "
    "the reason when not. Limited per client address.",
    responses={200: VerifyResult},
    body=VerifyRequest,
    errors=(429,),
    authenticated=False,
    tags=("decisions",),
)
def verify() -> Response:
    # Public, so counted per client address rather than per key.
    ratelimit.enforce(f"verify:{request.remote_addr}")
    idempotency.request_key()  # checked like on every POST; verifying creates nothing
    body = VerifyRequest.model_validate(request.get_json(silent=True))
    svc = services()
    claims, kid = service.verify_token(
        body.token,
        svc.decision_keys.public_keys(),
        audience=body.audience,
        issuer=svc.settings.decision_token_issuer,
    )
    return jsonify(VerifyResult(valid=True, kid=kid, claims=claims).model_dump(mode="json"))
