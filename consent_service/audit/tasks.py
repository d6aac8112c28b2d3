"""The audit log's periodic task (Celery beat): sign a checkpoint of the tree when it has grown."""

from __future__ import annotations

from celery import shared_task

from consent_service import db
from consent_service.audit.models import AuditCheckpoint
from consent_service.audit.service import make_checkpoint
from consent_service.runtime import services
from consent_service.timeutil import utcnow


def checkpoint_now(force: bool = False) -> AuditCheckpoint | None:
    """Sign the current tree head in a unit of work of its own; the note reaches the checkpoint
    file once committed. None when the log has not grown since the last one (unless `force`)."""
    signer = services().checkpoint_signer  # a worker's or the CLI's: the web holds none
    path = services().settings.audit_checkpoints_path
    with db.unit_of_work() as s:
        return make_checkpoint(s, signer, utcnow(), path, force=force)


@shared_task(name="audit.checkpoint", ignore_result=True)
def audit_checkpoint() -> int | None:
    row = checkpoint_now()
    return row.size if row is not None else None
