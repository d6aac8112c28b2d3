"""The receipts' Celery tasks: sign the receipt of a grant version once it is committed (only
workers hold the signing keys), and the sweep that signs the receipts still missing. Registered
by the Celery app (`consent_service.tasking.celery_init_app`)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task

from consent_service import db
from consent_service.consent.receipts import SIGN_RECEIPT, Controller
from consent_service.rights import receipts
from consent_service.runtime import services
from consent_service.timeutil import utcnow


@shared_task(name=SIGN_RECEIPT, ignore_result=True)
def sign_receipt(grant_row_id: str) -> str | None:
    svc = services()
    signer = svc.decision_signer  # the worker's: the key set with its private parts
    with db.unit_of_work() as s:
        kept = receipts.sign_pending(
            s,
            int(grant_row_id),
            signer.keys,
            signer.issuer,
            Controller.from_settings(svc.settings),
            svc.settings.public_url,
            utcnow(),
        )
        return kept.receipt_id if kept is not None else None


@shared_task(name=receipts.SWEEP_RECEIPTS, ignore_result=True)
def sweep_receipts() -> int:
    """Publish again the signing of receipts whose task was lost (or that predate signing)."""
    settings = services().settings
    with db.unit_of_work() as s:
        return receipts.sweep(s, utcnow(), timedelta(seconds=settings.outbox_sweep_after))
