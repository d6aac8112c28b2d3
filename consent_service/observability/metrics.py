"""The service's Prometheus metrics, computed when they are scraped from what every process
shares (the database, the broker, the gallery snapshots), so any web process answers for all
of them: no per-process counters, no multiprocess files.

Every number comes from a bounded query: an aggregate with GROUP BY over a small set of labels
(job statuses, decisions and reasons, modalities, delivery statuses) or a one-row aggregate.
The decision metrics look only at the decisions made in the last `window` (METRICS_WINDOW, an
hour by default), through the index on `decision_revision.created_at`, so a scrape costs what
that hour's decisions cost however long the service has run; the latency histogram's buckets
are counted by the database (one `SUM(CASE ...)` per bucket), never by loading rows. They are
therefore *gauge* histograms and gauges (the state of the last hour), not counters: Prometheus'
`rate()` is not needed, nor right, on them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from prometheus_client.metrics_core import (
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Float, String, case, cast, extract, func, literal
from sqlalchemy.orm import Mapped
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from consent_service.biometrics.gallery import read_snapshot_header
from consent_service.biometrics.models import BiometricTemplate, GalleryVersion
from consent_service.gate.models import DecisionRevision, GateJob
from consent_service.queues import ALL_QUEUES
from consent_service.vocabulary import DecisionKind, DeliveryStatus, JobStatus
from consent_service.webhooks.models import WebhookDelivery

# Seconds from a job's submission to its first decision: the model's work and the queue's wait.
LATENCY_BUCKETS: tuple[float, ...] = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)

QueueBacklog = Callable[[str], int | None]


@dataclass(frozen=True)
class Latency:
    count: int
    total: float
    # (upper bound, decisions at or under it), cumulative, ending with +inf.
    buckets: tuple[tuple[float, int], ...]


@dataclass(frozen=True)
class Snapshot:
    """Everything one scrape reports, as plain values (what the tests compare)."""

    jobs_by_status: dict[str, int]
    decisions: dict[str, int]  # jobs first decided in the window, by decision
    reasons: dict[tuple[str, str], int]  # the same jobs, once per (decision, reason) they carry
    latency: Latency
    queue_depth: dict[str, int]  # the queues whose broker could tell
    gallery_templates: dict[tuple[str, str], int]  # (modality, model) -> templates
    gallery_subjects: dict[tuple[str, str], int]  # (modality, model) -> enrolled subjects
    gallery_version: dict[str, int]  # modality -> the change log's head
    snapshot_lag: dict[tuple[str, str], int] = field(default_factory=dict)  # (modality, file)
    webhook_deliveries: dict[str, int] = field(default_factory=dict)
    webhook_failed_attempts: int = 0
    window: float = 3600.0


def _seconds_between(
    dialect: str, start: Mapped[datetime], end: Mapped[datetime]
) -> ColumnElement[float]:
    """`end - start` in seconds, in the database (SQLite keeps times as text; PostgreSQL as
    timestamps)."""
    if dialect == "sqlite":
        return cast((func.julianday(end) - func.julianday(start)) * 86400.0, Float)
    return cast(extract("epoch", end - start), Float)


def _latency(session: Session, since: datetime) -> Latency:
    dialect = session.get_bind().dialect.name
    seconds = _seconds_between(dialect, col(GateJob.created_at), col(DecisionRevision.created_at))
    bucket_sums = [func.sum(case((seconds <= le, 1), else_=0)) for le in LATENCY_BUCKETS]
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(seconds), literal(0.0)), *bucket_sums)
        .select_from(DecisionRevision)
        .join(GateJob, col(GateJob.id) == col(DecisionRevision.job_id))
        .where(col(DecisionRevision.revision) == 1, col(DecisionRevision.created_at) >= since)
    ).one()
    count, total = int(row[0]), float(row[1])
    counts = [int(n or 0) for n in row[2:]]
    return Latency(
        count, total, (*zip(LATENCY_BUCKETS, counts, strict=True), (float("inf"), count))
    )


def _decisions(
    session: Session, since: datetime
) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Jobs first decided since `since`, by decision, and by decision and reason. Grouped by the
    reasons' JSON text: the distinct lists are few (combinations of a small vocabulary)."""
    rows = session.execute(
        select(
            DecisionRevision.decision,
            cast(col(DecisionRevision.reasons), String),
            func.count(),
        )
        .where(col(DecisionRevision.revision) == 1, col(DecisionRevision.created_at) >= since)
        .group_by(DecisionRevision.decision, cast(col(DecisionRevision.reasons), String))
    ).all()
    decisions: Counter[str] = Counter({k.value: 0 for k in DecisionKind})
    reasons: Counter[tuple[str, str]] = Counter()
    for decision, reasons_json, n in rows:
        decisions[decision] += int(n)
        for reason in set(json.loads(reasons_json or "[]")):
            reasons[(decision, reason)] += int(n)
    return dict(decisions), dict(reasons)


def _snapshot_lag(gallery_dir: Path | None, heads: dict[str, int]) -> dict[tuple[str, str], int]:
    """How many template changes each sealed gallery snapshot on this host is behind its
    modality's head: what a worker starting now would apply before its first job (workers
    write one every `GalleryIndex.SNAPSHOT_EVERY` changes, or on a removal)."""
    if gallery_dir is None or not gallery_dir.is_dir():
        return {}
    lag: dict[tuple[str, str], int] = {}
    for path in sorted(gallery_dir.glob("*.gallery")):
        try:
            header = read_snapshot_header(path)
            modality, seq = str(header["modality"]), int(header["seq"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being replaced, or not a snapshot: the next scrape reads it
        lag[(modality, path.name)] = max(0, heads.get(modality, 0) - seq)
    return lag


def snapshot(
    session: Session,
    now: datetime,
    window: float,
    backlog: QueueBacklog,
    queues: Sequence[str] = ALL_QUEUES,
    gallery_dir: Path | None = None,
) -> Snapshot:
    """One scrape's values: read-only, a handful of aggregate queries and one broker call per
    queue."""
    since = now - timedelta(seconds=window)
    jobs: Counter[str] = Counter({s.value: 0 for s in JobStatus})
    for status, n in session.execute(
        select(GateJob.status, func.count()).group_by(GateJob.status)
    ).all():
        jobs[status] += int(n)
    decisions, reasons = _decisions(session, since)

    templates: dict[tuple[str, str], int] = {}
    subjects: dict[tuple[str, str], int] = {}
    for modality, model, n, people in session.execute(
        select(
            BiometricTemplate.modality,
            BiometricTemplate.model,
            func.count(),
            func.count(func.distinct(BiometricTemplate.subject_id)),
        ).group_by(BiometricTemplate.modality, BiometricTemplate.model)
    ).all():
        templates[(modality, model)] = int(n)
        subjects[(modality, model)] = int(people)
    heads = {
        m: int(v)
        for m, v in session.execute(select(GalleryVersion.modality, GalleryVersion.version)).all()
    }

    deliveries: Counter[str] = Counter({s.value: 0 for s in DeliveryStatus})
    failed_attempts = 0
    for status, n, attempts in session.execute(
        select(
            WebhookDelivery.status,
            func.count(),
            func.coalesce(func.sum(WebhookDelivery.attempts), 0),
        ).group_by(WebhookDelivery.status)
    ).all():
        deliveries[status] += int(n)
        # A delivered delivery's last attempt succeeded; every other attempt failed.
        failed_attempts += int(attempts) - (int(n) if status == DeliveryStatus.DELIVERED else 0)

    depths = {q: d for q in queues if (d := backlog(q)) is not None}
    return Snapshot(
        jobs_by_status=dict(jobs),
        decisions=decisions,
        reasons=reasons,
        latency=_latency(session, since),
        queue_depth=depths,
        gallery_templates=templates,
        gallery_subjects=subjects,
        gallery_version=heads,
        snapshot_lag=_snapshot_lag(gallery_dir, heads),
        webhook_deliveries=dict(deliveries),
        webhook_failed_attempts=failed_attempts,
        window=window,
    )


def _gauge(name: str, doc: str, labels: Sequence[str], values: dict) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def families(s: Snapshot) -> Iterator[Metric]:
    """The metric families of one snapshot, in the Prometheus data model."""
    hour = f"in the last {s.window:g} seconds (METRICS_WINDOW)"
    yield _gauge("consent_gate_jobs", "Gate jobs kept, by status.", ["status"], s.jobs_by_status)
    yield _gauge(
        "consent_gate_decisions",
        f"Gate jobs first decided {hour}, by decision.",
        ["decision"],
        s.decisions,
    )
    yield _gauge(
        "consent_gate_decision_reasons",
        f"Gate jobs first decided {hour}, once per reason code their decision carries.",
        ["decision", "reason"],
        s.reasons,
    )
    latency = GaugeHistogramMetricFamily(
        "consent_gate_decision_latency_seconds",
        f"Seconds from a job's submission to its first decision, for the decisions made {hour}.",
        buckets=[("+Inf" if le == float("inf") else f"{le:g}", n) for le, n in s.latency.buckets],
        gsum_value=s.latency.total,
    )
    yield latency
    yield _gauge(
        "consent_queue_depth",
        "Task messages the broker holds per queue (waiting, or taken and not yet acknowledged), "
        "the gallery shards' queues included when GALLERY_SHARDS > 1; a queue the broker cannot "
        "tell about has no sample.",
        ["queue"],
        s.queue_depth,
    )
    yield _gauge(
        "consent_gallery_templates",
        "Biometric templates in the gallery, by modality and model.",
        ["modality", "model"],
        s.gallery_templates,
    )
    yield _gauge(
        "consent_gallery_subjects",
        "Subjects with at least one template, by modality and model.",
        ["modality", "model"],
        s.gallery_subjects,
    )
    yield _gauge(
        "consent_gallery_version",
        "The newest gallery version (the template change log's head), by modality.",
        ["modality"],
        s.gallery_version,
    )
    yield _gauge(
        "consent_gallery_snapshot_lag",
        "Template changes a sealed gallery snapshot readable here is behind the newest version: "
        "what a worker starting from it applies before its first job.",
        ["modality", "snapshot"],
        s.snapshot_lag,
    )
    yield _gauge(
        "consent_webhook_deliveries",
        "Webhook deliveries in the outbox, by status (failed: given up after every attempt).",
        ["status"],
        s.webhook_deliveries,
    )
    failed = GaugeMetricFamily(
        "consent_webhook_failed_attempts",
        "Webhook delivery attempts that failed (an error or a non-2xx answer), over the outbox.",
        value=s.webhook_failed_attempts,
    )
    yield failed


class ConsentServiceCollector(Collector):
    """A collector for a `CollectorRegistry`: each `collect()` takes a fresh `snapshot`."""

    def __init__(self, take: Callable[[], Snapshot]):
        self._take = take

    def collect(self) -> Iterable[Metric]:
        return list(families(self._take()))
