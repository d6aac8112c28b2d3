"""The retention schedule through the real app: /retention in both languages with the periods of
the settings in force, and `consent-service retention report` / `retention purge` on a migrated
database (each command one unit of work; the purge's audit entries committed with it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlmodel import Session, select

from consent_service.app import create_app
from consent_service.audit.models import AuditEvent
from consent_service.cli import main
from consent_service.cli_support import AppLoader
from consent_service.gate.models import Decision, GateJob
from consent_service.migrate import upgrade
from consent_service.providers.models import Provider
from consent_service.settings import Settings
from consent_service.timeutil import utcnow

ZH = "zh-CN,zh;q=0.9,en;q=0.5"


@pytest.fixture
def app(tmp_path) -> Iterator[Flask]:
    settings = Settings(
        consent_service_home=tmp_path, broker_url="memory://", retention_jobs_days=200
    )
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    yield app
    app.extensions["db_engine"].dispose()


def _cli(app: Flask, *args: str):
    result = CliRunner().invoke(main, list(args), obj=AppLoader(lambda: app))
    assert result.exit_code == 0, result.output
    return result.output


def test_the_page_lists_every_class_with_the_periods_in_force_in_both_languages(app):
    client = app.test_client()
    en = client.get("/retention").get_data(as_text=True)
    assert "How long we keep data" in en
    for text in (
        "200 days after the job was submitted",  # RETENTION_JOBS_DAYS=200
        "1095 days after the grant was withdrawn or expired",
        "30 days after delivery",
        "1095 days without interaction",
        "7 days after the job",  # CONSENT_REQUEST_FINDING_TTL
        "1 days after upload",  # MEDIA_RETENTION
        "365 days after the complaint was resolved",  # RETENTION_COMPLAINT_EVIDENCE_DAYS
        "Audit log entries",
        "DSP Art. 16",
        "BIPA §15(a)",
    ):
        assert text in en, text
    zh = client.get("/retention", headers={"Accept-Language": ZH}).get_data(as_text=True)
    assert "数据保存期限" in zh
    assert "任务提交后 200 天" in zh
    assert "投诉处理完毕后 365 天" in zh
    assert "How long we keep data" not in zh


def test_report_counts_what_is_due_and_purge_destroys_it_with_audit_entries(app):
    with Session(app.extensions["db_engine"]) as s:
        provider = Provider(name="Acme")
        s.add(provider)
        s.flush()
        for days in (250, 201, 10):
            job = GateJob(
                provider_id=provider.id,
                operation="face_swap",
                status="decided",
                created_at=utcnow() - timedelta(days=days),
            )
            s.add(job)
            s.flush()
            s.add(Decision(job_id=job.id, decision="allow"))
        s.commit()

    report = _cli(app, "retention", "report")
    assert "jobs" in report and "2 due" in report
    assert "enforced by media.purge" in report

    out = _cli(app, "retention", "purge")
    assert "jobs             2 purged (findings 0)" in out
    with Session(app.extensions["db_engine"]) as s:
        assert len(s.exec(select(GateJob)).all()) == 1
        events = s.exec(select(AuditEvent).where(AuditEvent.event_type == "retention.purged"))
        assert [e.payload["count"] for e in events] == [2]
    assert "0 due" in _cli(app, "retention", "report")
