"""Decision tokens on the web: the public keys (JWKS). Verifying a token and reading its status
are the gate's (`gate.api`): they read the decision's records."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from consent_service.api_contract.operations import api_operation
from consent_service.runtime import services
from consent_service.tokens.schemas import Jwks

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
