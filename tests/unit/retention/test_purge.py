"""The retention purges as plain functions: each class past its period is destroyed (and nothing
within it), each class purged gets one `retention.purged` audit entry with its counts, the report
counts what is due, and a second run finds nothing."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from consent_service import db
from consent_service.audit.models import AuditEvent
from consent_service.audit.service import verify
from consent_service.biometrics.models import BiometricTemplate
from consent_service.complaints.models import Complaint
from consent_service.consent.models import ConsentGrant
from consent_service.consent_requests.models import ConsentRequest
from consent_service.crypto import StaticKeys
from consent_service.gate.models import Decision, Finding, GateJob
from consent_service.retention import service as retention
from consent_service.settings import Settings
from consent_service.timeutil import utcnow
from consent_service.webhooks.models import Webhook, WebhookDelivery

KEY = StaticKeys.single(b"k" * 32)
SETTINGS = Settings(
    retention_jobs_days=183,
    retention_grant_evidence_days=1095,
    retention_webhook_body_days=30,
    retention_template_idle_days=1095,
)


def _ago(days: float):
    return utcnow() - timedelta(days=days)


def _world(session, factories, store):
    """Two of each class: one past its period, one within it."""
    provider = factories.ProviderFactory()
    old_job = factories.GateJobFactory(provider=provider, decided=True, created_at=_ago(200))
    new_job = factories.GateJobFactory(provider=provider, decided=True, created_at=_ago(10))
    running = factories.GateJobFactory(provider=provider, status="queued", created_at=_ago(400))
    idle = factories.SubjectFactory()
    seen = factories.SubjectFactory()
    factories.FindingFactory(job=old_job, subject_id=seen.id)
    factories.FindingFactory(job=old_job, outcome="unknown")
    factories.FindingFactory(job=new_job, subject_id=seen.id)
    request = factories.ConsentRequestFactory(provider=provider, job_id=old_job.id)

    ended = factories.ConsentGrantFactory(
        subject=idle, ip="203.0.113.7", user_agent="UA", created_at=_ago(1500)
    )
    factories.ConsentGrantFactory(
        subject=idle,
        grant_id=ended.grant_id,
        revoked=True,
        ip="203.0.113.7",
        user_agent="UA",
        created_at=_ago(1200),
    )
    active_old = factories.ConsentGrantFactory(
        subject=seen, ip="198.51.100.1", user_agent="UA", created_at=_ago(1500)
    )

    hook = Webhook(
        provider_id=provider.id,
        url="https://p.example/h",
        secret_ciphertext=b"",
        secret_wrapped_key=b"",
    )
    session.add(hook)
    session.flush()
    sent_old = WebhookDelivery(
        webhook_id=hook.id,
        provider_id=provider.id,
        event="job.decided",
        body='{"a":1}',
        status="delivered",
        created_at=_ago(40),
    )
    pending_old = WebhookDelivery(
        webhook_id=hook.id,
        provider_id=provider.id,
        event="job.decided",
        body='{"b":1}',
        status="pending",
        created_at=_ago(40),
    )
    sent_new = WebhookDelivery(
        webhook_id=hook.id,
        provider_id=provider.id,
        event="job.decided",
        body='{"c":1}',
        status="delivered",
        created_at=_ago(1),
    )
    session.add_all([sent_old, pending_old, sent_new])

    for subject in (idle, idle, seen):
        factories.BiometricTemplateFactory(subject=subject, created_at=_ago(1300))

    # Complaint evidence: kept while the complaint is open, however old; destroyed a year after
    # its resolution (the default).
    def complaint(reference: str, resolved_days: float | None, filed_days: float = 900):
        row = factories.ComplaintFactory(
            reference=reference,
            evidence_key=store.put(b"%PDF-1.4 " + reference.encode()),
            created_at=_ago(filed_days),
        )
        if resolved_days is not None:
            row.status, row.outcome, row.resolved_at = "resolved", "rejected", _ago(resolved_days)
        return row

    old_complaint = complaint("C-OLD0-0000", resolved_days=400)
    recent_complaint = complaint("C-NEW0-0000", resolved_days=100)
    open_complaint = complaint("C-OPEN-0000", resolved_days=None)
    session.commit()
    return dict(
        old_job=old_job,
        new_job=new_job,
        running=running,
        request=request,
        idle=idle,
        seen=seen,
        ended=ended,
        active_old=active_old,
        sent_old=sent_old,
        pending_old=pending_old,
        sent_new=sent_new,
        old_complaint=old_complaint,
        recent_complaint=recent_complaint,
        open_complaint=open_complaint,
    )


def test_each_class_past_its_period_is_purged_and_audited_with_counts(
    session, factories, reopen, store, babel_app
):
    w = _world(session, factories, store)
    kept_files = {c.id: c.evidence_key for k, c in w.items() if k.endswith("_complaint")}
    now = utcnow()
    assert retention.due(session, SETTINGS, now) == {
        "jobs": 1,
        "grant_evidence": 1,
        "webhook_bodies": 1,
        "templates": 2,
        "templates_withdrawn": 0,
        "complaint_evidence": 1,
    }

    done = retention.purge(session, KEY, SETTINGS, now, store)
    with babel_app.app_context():
        db.finish(session)  # commits, then deletes the evidence files
    assert done == {
        "jobs": {"count": 1, "findings": 2},
        "grant_evidence": {"count": 1, "versions": 2},
        "webhook_bodies": {"count": 1},
        "templates": {"count": 2, "people": 1},
        "templates_withdrawn": {"count": 0},
        "complaint_evidence": {"count": 1, "files": 1},
    }

    s = reopen()
    assert {j.id for j in s.exec(select(GateJob))} == {w["new_job"].id, w["running"].id}
    assert s.get(Decision, w["old_job"].id) is None
    assert [f.job_id for f in s.exec(select(Finding))] == [w["new_job"].id]
    assert s.get(ConsentRequest, w["request"].id).job_id is None  # the person's request stays
    evidence = {(g.grant_id, g.version): (g.ip, g.user_agent) for g in s.exec(select(ConsentGrant))}
    assert evidence[(w["ended"].grant_id, 1)] == (None, None)
    assert evidence[(w["ended"].grant_id, 2)] == (None, None)
    # Still in force: its evidence is the proof of consent, however old.
    assert evidence[(w["active_old"].grant_id, 1)] == ("198.51.100.1", "UA")
    bodies = {d.id: d.body for d in s.exec(select(WebhookDelivery))}
    assert bodies == {
        w["sent_old"].id: "",
        w["pending_old"].id: '{"b":1}',
        w["sent_new"].id: '{"c":1}',
    }
    # The person a recent job found keeps their template; the idle one loses both of theirs.
    assert [t.subject_id for t in s.exec(select(BiometricTemplate))] == [w["seen"].id]
    # The complaint resolved 400 days ago lost its evidence (row and file), and only it.
    complaints = {c.id: c for c in s.exec(select(Complaint))}
    assert len(complaints) == 3  # every complaint itself stays
    gone = complaints[w["old_complaint"].id]
    assert gone.evidence_key is None and gone.evidence_destroyed_at is not None
    assert sorted(store.stale(utcnow() + timedelta(days=1))) == sorted(
        kept_files[c] for c in (w["recent_complaint"].id, w["open_complaint"].id)
    )

    events = s.exec(
        select(AuditEvent)
        .where(AuditEvent.event_type == "retention.purged")
        .order_by(AuditEvent.seq)
    ).all()
    assert [(e.actor, {k: v for k, v in e.payload.items() if k != "cutoff"}) for e in events] == [
        ("system:retention", {"class": "jobs", "count": 1, "findings": 2}),
        ("system:retention", {"class": "grant_evidence", "count": 1, "versions": 2}),
        ("system:retention", {"class": "webhook_bodies", "count": 1}),
        ("system:retention", {"class": "templates", "count": 2, "people": 1}),
        ("system:retention", {"class": "complaint_evidence", "count": 1, "files": 1}),
    ]
    assert events[0].payload["cutoff"] == (now - timedelta(days=183)).isoformat()
    assert verify(s, KEY).ok

    # Nothing is due any more; a second run changes nothing and audits nothing.
    assert set(retention.due(s, SETTINGS, now).values()) == {0}
    assert retention.purge(s, KEY, SETTINGS, now, store) == {
        k: {"count": 0}
        for k in (
            "jobs",
            "grant_evidence",
            "webhook_bodies",
            "templates",
            "templates_withdrawn",
            "complaint_evidence",
        )
    }
    s.commit()
    assert (
        len(s.exec(select(AuditEvent).where(AuditEvent.event_type == "retention.purged")).all())
        == 5
    )


def test_periods_come_from_the_settings(session, factories, store):
    _world(session, factories, store)
    longer = SETTINGS.model_copy(
        update={
            "retention_jobs_days": 365,
            "retention_webhook_body_days": 60,
            "retention_complaint_evidence_days": 500,
        }
    )
    due = retention.due(session, longer, utcnow())
    assert (due["jobs"], due["webhook_bodies"], due["complaint_evidence"]) == (0, 0, 0)


def test_templates_go_on_the_last_withdrawal_only_for_people_who_chose_it(
    session, factories, reopen, store
):
    chose, chose_active, kept = (factories.SubjectFactory() for _ in range(3))
    chose.destroy_templates_on_withdrawal = chose_active.destroy_templates_on_withdrawal = True
    for subject in (chose, chose_active, kept):
        first = factories.ConsentGrantFactory(subject=subject)
        factories.ConsentGrantFactory(subject=subject, grant_id=first.grant_id, revoked=True)
        factories.BiometricTemplateFactory(subject=subject)
    factories.ConsentGrantFactory(subject=chose_active)  # still one grant in force
    session.commit()

    done = retention.purge(session, KEY, SETTINGS, utcnow(), store)
    session.commit()
    assert done["templates_withdrawn"] == {"count": 1, "people": 1}
    s = reopen()
    left = {t.subject_id for t in s.exec(select(BiometricTemplate))}
    assert left == {chose_active.id, kept.id}
    (event,) = s.exec(select(AuditEvent).where(AuditEvent.event_type == "retention.purged")).all()
    assert event.payload["class"] == "templates_withdrawn"
