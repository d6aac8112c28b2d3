"""`GET /healthz`: the probe a container runtime or load balancer asks whether this web process
can serve (it reaches its database); no account, no details an outsider could use."""

from __future__ import annotations

import logging

from flask import Blueprint
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from consent_service import db

bp = Blueprint("probes", __name__)
log = logging.getLogger(__name__)


@bp.route("/healthz")
def healthz():
    """200 when a query reaches the database, else 503 (the cause goes to the log only)."""
    try:
        with db.engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        log.exception("health check: the database is unreachable")
        return {"status": "unavailable"}, 503, {"Cache-Control": "no-store"}
    return {"status": "ok"}, 200, {"Cache-Control": "no-store"}
