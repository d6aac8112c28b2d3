"""Retention end to end: a real enrollment, grant and job (real worker, real face model, Redis,
SQLite and PostgreSQL) aged past their periods; beat's `retention.purge`, sent to the real worker,
destroys them with one audit entry per class and its counts; the published schedule in Chromium,
in English and Chinese (screenshots in test-artifacts/retention/)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import update
from sqlmodel import Session, select

from consent_service import db
from consent_service.audit.models import AuditEvent
from consent_service.audit.service import verify
from consent_service.biometrics.models import BiometricTemplate
from consent_service.consent import service as consent
from consent_service.consent.models import ConsentGrant
from consent_service.gate.models import Finding, GateJob
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Operation, Role
from tests import browser
from tests.e2e.conftest import Api

browser.require_chromium()

PURGE_TIMEOUT = 120


def _age(stack, days: int) -> None:
    """Move every row's time back `days` days: what a database left alone that long holds."""
    then = utcnow() - timedelta(days=days)
    with stack.app.app_context(), db.unit_of_work() as s:
        for model in (GateJob, ConsentGrant, BiometricTemplate):
            s.exec(update(model).values(created_at=then))


def _purged(engine) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(
            s.exec(
                select(AuditEvent)
                .where(AuditEvent.event_type == "retention.purged")
                .order_by(AuditEvent.seq)
            )
        )


def test_the_worker_purges_each_class_past_its_period_and_audits_the_counts(stack, photos):
    ann = stack.enroll("ret-ann@example.org", photos["obama.jpg"])
    assert ann.status == "completed", ann.error
    _, key = stack.provider("Retention Acme")
    with stack.app.app_context(), db.unit_of_work() as s:
        granted = consent.grant(
            s,
            services().audit_key,
            ann.subject_id,
            consent.GrantRequest(
                operations=[Operation.FACE_SWAP],
                roles=[Role.SOURCE],
                all_providers=True,
                provider_ids=[],
            ),
            consent.Evidence(
                actor="test", identity_method="test", ip="203.0.113.9", user_agent="Chromium"
            ),
        )
    job = Api(stack.client(), key).gate(source=[photos["obama2.jpg"]])
    assert job["decision"] == "allow", job
    stack.revoke(ann.subject_id, granted.grant_id)
    _age(stack, 1200)  # past every default period: 183 days, 3 years, 3 years

    engine = stack.app.extensions["db_engine"]
    with Session(engine) as s:
        templates = len(
            s.exec(
                select(BiometricTemplate).where(BiometricTemplate.subject_id == ann.subject_id)
            ).all()
        )
        findings = len(s.exec(select(Finding).where(Finding.job_id == job["id"])).all())
    before = len(_purged(engine))
    stack.app.extensions["task_sender"]("retention.purge", [])  # what beat sends
    deadline = time.monotonic() + PURGE_TIMEOUT
    while len(_purged(engine)) < before + 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    events = _purged(engine)[before:]
    counts = {
        e.payload["class"]: {k: v for k, v in e.payload.items() if k not in ("class", "cutoff")}
        for e in events
    }
    print(f"\n[{stack.backend}] retention.purged audit entries: {counts}")
    assert counts["jobs"]["count"] >= 1 and counts["jobs"]["findings"] >= findings >= 1
    # The grant's first version held the evidence; the revocation (stack.revoke) recorded none.
    assert counts["grant_evidence"] == {"count": 1, "versions": 1}
    assert counts["templates"] == {"count": templates, "people": 1}
    assert all(e.actor == "system:retention" for e in events)

    with Session(engine) as s:
        assert s.get(GateJob, job["id"]) is None
        assert (
            s.exec(
                select(BiometricTemplate).where(BiometricTemplate.subject_id == ann.subject_id)
            ).all()
            == []
        )
        versions = s.exec(
            select(ConsentGrant).where(ConsentGrant.grant_id == granted.grant_id)
        ).all()
        assert [(v.ip, v.user_agent) for v in versions] == [(None, None), (None, None)]
        assert verify(s, _audit_key(stack)).ok


def _audit_key(stack) -> bytes:
    with stack.app.app_context():
        return services().audit_key


@pytest.mark.parametrize(
    ("locale", "heading", "jobs_period"),
    [
        ("en-US", "How long we keep data", "183 days after the job was submitted"),
        ("zh-CN", "数据保存期限", "任务提交后 183 天"),
    ],
)
def test_the_published_schedule_in_the_browser(base_url, tmp_path, locale, heading, jobs_period):
    with sync_playwright() as pw:
        context = browser.launch(pw, tmp_path / "profile", locale=locale)
        try:
            page = context.new_page()
            page.goto(f"{base_url}/retention")
            assert page.locator("h2").inner_text() == heading
            rows = page.locator("#retention-schedule tbody tr")
            assert rows.count() == 9
            assert jobs_period in page.locator('tr[data-class="jobs"]').inner_text()
            browser.shot(page, "retention", f"retention-{locale}")
        finally:
            context.close()
