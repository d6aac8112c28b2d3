"""The audit log's periodic task (Celery beat): sign a checkpoint of the tree when it has grown."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from consent_service import db
from consent_service.audit.checkpoints import SignerKey, checkpoint_key_path, load_signer
from consent_service.audit.models import AuditCheckpoint
from consent_service.audit.service import make_checkpoint
from consent_service.runtime import services
from consent_service.timeutil import utcnow

_SIGNER = "audit_checkpoint_signer"


def checkpoint_signer() -> SignerKey:
    """The checkpoint signing key (production refuses to go on without AUDIT_CHECKPOINT_KEY),
    read again when its file changes, so a rotation (`keys rotate checkpoint-signing`) is
    followed without a restart. Only workers and the CLI load it; the web serves stored
    checkpoints."""
    settings = services().settings
    path = checkpoint_key_path(settings)
    stamp = path.stat().st_mtime_ns if path is not None and path.exists() else None
    cached = current_app.extensions.get(_SIGNER)
    if cached is None or cached[0] != stamp:
        cached = (stamp, load_signer(settings))
        current_app.extensions[_SIGNER] = cached
    return cached[1]


def checkpoint_now(force: bool = False) -> AuditCheckpoint | None:
    """Sign the current tree head in a unit of work of its own; the note reaches the checkpoint
    file once committed. None when the log has not grown since the last one (unless `force`)."""
    signer = checkpoint_signer()
    path = services().settings.audit_checkpoints_path
    with db.unit_of_work() as s:
        return make_checkpoint(s, signer, utcnow(), path, force=force)


@shared_task(name="audit.checkpoint", ignore_result=True)
def audit_checkpoint() -> int | None:
    row = checkpoint_now()
    return row.size if row is not None else None
