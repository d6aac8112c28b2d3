"""GET /metrics: the Prometheus text format, for operators' scrapers. With METRICS_TOKEN set it
asks for `Authorization: Bearer <token>`; without one it is open in development (the embedded
default) and answers 404 in production (no metrics until an operator chooses a token)."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, request
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from consent_service import db
from consent_service.observability.metrics import ConsentServiceCollector, snapshot
from consent_service.queues import ALL_QUEUES, gallery_queues
from consent_service.runtime import services
from consent_service.tasking import queue_backlog
from consent_service.timeutil import utcnow

bp = Blueprint("observability", __name__)


def _allowed(token: str | None, production: bool) -> bool:
    if token is None:
        if production:
            abort(404)
        return True
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), token.encode()
    )


@bp.get("/metrics")
def metrics() -> Response:
    settings = services().settings
    # An empty METRICS_TOKEN is no token (production refuses it at start).
    if not _allowed(settings.metrics_token or None, settings.is_production):
        return Response(
            "A bearer token (METRICS_TOKEN) is required.\n",
            status=401,
            mimetype="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    broker = settings.celery_broker_url
    session = db.session()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        ConsentServiceCollector(
            lambda: snapshot(
                session,
                utcnow(),
                settings.metrics_window,
                lambda queue: queue_backlog(broker, queue),
                queues=(*ALL_QUEUES, *gallery_queues(settings.gallery_shards)),
                gallery_dir=settings.gallery_dir,
            )
        )
    )
    # The text format by default; OpenMetrics when the scraper asks (Prometheus does), where the
    # latency is a proper gauge histogram.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(registry), content_type=content_type)
