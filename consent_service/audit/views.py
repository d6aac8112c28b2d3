"""The audit log on the web: its newest signed checkpoint, with proofs on request. Public (like
the JWKS): whoever holds an earlier checkpoint or a decision token can check the log only grew."""

from __future__ import annotations

import base64

from flask import Blueprint, jsonify, request

from consent_service import db
from consent_service.api_contract import ratelimit
from consent_service.api_contract.operations import api_operation
from consent_service.audit import merkle, service
from consent_service.audit.checkpoints import Checkpoint
from consent_service.audit.schemas import (
    CheckpointDocument,
    CheckpointQuery,
    ConsistencyProof,
    InclusionProof,
)
from consent_service.errors import InvalidRequest, NotFound
from consent_service.runtime import services

bp = Blueprint("audit", __name__)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@bp.get("/api/v1/audit/checkpoint")
@api_operation(
    "The audit log's newest signed checkpoint",
    description="No API key. The newest checkpoint (size and RFC 9162 root of the audit log's "
    "Merkle tree, signed with Ed25519). `from` adds the consistency proof from a size you "
    "hold a checkpoint of (or a decision token's `audit_checkpoint`); `entry` adds an "
    "inclusion proof. `verifier_keys` lists every checkpoint key, old and new. 404 before the "
    "first checkpoint. Limited per client address.",
    responses={200: CheckpointDocument},
    query=CheckpointQuery,
    errors=(404, 429),
    authenticated=False,
    tags=("audit",),
)
def checkpoint():
    ratelimit.enforce(f"audit:{request.remote_addr}")  # proofs cost O(n) hashing
    query = CheckpointQuery.model_validate(request.args.to_dict())
    s = db.session()
    row = service.latest_checkpoint(s)
    if row is None:
        raise NotFound("No audit checkpoint has been made yet.")
    document = CheckpointDocument(
        checkpoint=row.note,
        origin=row.note.split("\n", 1)[0],
        size=row.size,
        root=_b64(bytes.fromhex(row.root)),
        timestamp=Checkpoint("", row.size, b"", row.timestamp).time,
        verifier_key=row.verifier_key,
        verifier_keys=[key.vkey() for key in services().checkpoint_verifiers],
    )
    wants_leaves = query.from_size is not None or query.entry is not None
    leaves = service.leaf_hashes(s, row.size) if wants_leaves else []
    if query.from_size is not None:
        if query.from_size > row.size:
            raise InvalidRequest(
                "`from` (%(first)d) is larger than the checkpoint (%(size)d).",
                first=query.from_size,
                size=row.size,
            )
        proof = merkle.consistency_proof(leaves, query.from_size)
        document.consistency = ConsistencyProof(
            first=query.from_size, second=row.size, proof=[_b64(p) for p in proof]
        )
    if query.entry is not None:
        if query.entry > row.size:
            raise InvalidRequest(
                "`entry` (%(entry)d) is not in the checkpoint (%(size)d entries).",
                entry=query.entry,
                size=row.size,
            )
        proof = merkle.inclusion_proof(leaves, query.entry - 1)
        document.inclusion = InclusionProof(
            entry=query.entry,
            leaf_index=query.entry - 1,
            size=row.size,
            leaf_hash=_b64(leaves[query.entry - 1]),
            proof=[_b64(p) for p in proof],
        )
    return jsonify(document.model_dump(mode="json"))
