"""After the commit, at the boundary (view, task, CLI): send the deliveries a unit of work wrote
to the worker. A message lost here is not a delivery lost: `webhooks.retry_due` sweeps them."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask
from sqlmodel import Session

from consent_service.webhooks.service import take_outbox
from workers import publish

DELIVER_TASK = "webhooks.deliver"
RETRY_DUE_TASK = "webhooks.retry_due"


def publish_deliveries(app: Flask, delivery_ids: Iterable[str]) -> None:
    for delivery_id in delivery_ids:
        publish(app, DELIVER_TASK, delivery_id)


def publish_outbox(app: Flask, session: Session) -> None:
    """Call once the session's transaction is committed."""
    publish_deliveries(app, take_outbox(session))
