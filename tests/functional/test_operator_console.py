"""The operator console through the real app: only operators get in (403 for others, sign-in
for strangers), approving and suspending providers (a suspended provider's key is refused),
resolving a dispute (both people told on their dashboard), the audit page and health page, and
`consent-service audit verify` on an intact and a tampered database."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlmodel import select

from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.audit.models import AuditEvent
from consent_service.biometrics.disputes import open_dispute
from consent_service.biometrics.models import BiometricTemplate, Enrollment, EnrollmentDispute
from consent_service.cli import main
from consent_service.mail import read_outbox
from consent_service.operators.models import WorkerHeartbeat
from consent_service.operators.service import add_operator, heartbeat
from consent_service.providers.models import Provider
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from tests import factories
from tests.support import (
    Person,
    accept_invitation,
    invitation_path,
    mailed_link,
    redis_database,
    set_up_two_factor,
    sign_in,
    verified_sign_up,
)

PASSWORD = "a long enough password"
PAGES = ["/operator/", "/operator/audit", "/operator/health", "/operator/purposes"]


@pytest.fixture(scope="module")
def site(make_api_app):
    return make_api_app()


def _person(
    site, email: str, operator: bool = False, accept_language: str | None = None
) -> tuple[Person, int]:
    person = Person(site.client())
    if accept_language:  # the language signed up in is the account's, for pages and mail
        person.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = accept_language
    verified_sign_up(person, email, PASSWORD)
    invitation = None
    with site.app.app_context(), db.unit_of_work() as s:
        if operator:
            _, invitation = add_operator(s, services().audit_key, email)
        user = s.exec(select(User).where(User.email == email)).one()
        subject_id = s.exec(select(Subject).where(Subject.user_id == user.id)).one().id
    if invitation is not None:  # the invited owner accepts, then sets up the second factor
        accept_invitation(person, invitation_path(site.app, invitation))
        set_up_two_factor(person)
    return person, subject_id


def test_only_operators_reach_the_console(site):
    stranger = site.client()
    for page in PAGES:
        response = stranger.get(page)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    person, _ = _person(site, "plain@example.org")
    for page in PAGES:
        assert person.client.get(page).status_code == 403
    provider_id = _provider_id(site, "Acme")
    response = person.client.post(f"/operator/providers/{provider_id}/status", data={})
    assert response.status_code in (400, 403)  # no CSRF token and no role: refused either way
    operator, _ = _person(site, "op@example.org", operator=True)
    for page in PAGES:
        assert operator.client.get(page).status_code == 200


def _provider_id(site, name: str) -> str:
    with site.app.app_context():
        return db.session().exec(select(Provider).where(Provider.name == name)).one().id


def test_suspend_and_approve_a_provider(site):
    operator, _ = _person(site, "op2@example.org", operator=True)
    provider_id = _provider_id(site, "Globex")
    path = f"/operator/providers/{provider_id}/status"
    api = site.client()
    assert api.get("/api/v1/jobs/none", headers=site.auth(site.other_key)).status_code == 404

    response = operator.post(path, {"status": "suspended"}, form_page="/operator/")
    assert response.status_code == 302
    assert api.get("/api/v1/jobs/none", headers=site.auth(site.other_key)).status_code == 401
    assert "Globex is now suspended" in operator.get("/operator/")

    operator.post(path, {"status": "active"}, form_page="/operator/")
    assert api.get("/api/v1/jobs/none", headers=site.auth(site.other_key)).status_code == 404
    with site.app.app_context():
        events = db.session().exec(select(AuditEvent).order_by(AuditEvent.seq)).all()
        kinds = [(e.event_type, e.payload.get("provider_id")) for e in events]
    assert ("operator.provider_suspended", provider_id) in kinds
    assert ("operator.provider_approved", provider_id) in kinds


def test_an_operator_adds_and_retires_a_purpose_on_the_console(site):
    operator, _ = _person(site, "op-purposes@example.org", operator=True)
    page = operator.get("/operator/purposes")
    assert 'data-purpose="advertising" data-active="yes"' in page  # the seeded vocabulary
    form = {"code": "satire", "label_en": "Satire and parody", "label_zh": "讽刺与戏仿"}
    added = operator.post("/operator/purposes", form, form_page="/operator/purposes")
    assert added.status_code == 302
    page = operator.get("/operator/purposes")
    assert "Purpose satire is in force." in page and "讽刺与戏仿" in page
    listed = site.client().get("/api/v1/purposes").get_json()["purposes"]
    assert "satire" in [p["code"] for p in listed]
    again = operator.post("/operator/purposes", form, form_page="/operator/purposes")
    assert again.status_code == 200 and "exists already" in again.get_data(as_text=True)
    bad = operator.post(
        "/operator/purposes", {**form, "code": "Not A Code"}, form_page="/operator/purposes"
    )
    assert "lower-case letters" in bad.get_data(as_text=True)

    retired = operator.post("/operator/purposes/satire/retire", {}, form_page="/operator/purposes")
    assert retired.status_code == 302
    assert 'data-purpose="satire" data-active="no"' in operator.get("/operator/purposes")
    listed = site.client().get("/api/v1/purposes").get_json()["purposes"]
    assert "satire" not in [p["code"] for p in listed]
    with site.app.app_context():
        events = db.session().exec(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [
        (e.event_type, e.payload["code"]) for e in events if e.event_type.startswith("purpose.")
    ][-2:] == [("purpose.added", "satire"), ("purpose.retired", "satire")]
    person, _ = _person(site, "not-an-operator@example.org")
    assert person.client.post("/operator/purposes/news/retire").status_code in (400, 403)


def _dispute(site, holder_id: int, claimant_id: int) -> tuple[str, str]:
    """The holder has a face template; the claimant's enrollment of the same face is held in
    a dispute. Returns (dispute id, enrollment id)."""
    with site.app.app_context(), db.unit_of_work() as s, factories.bound(s):
        svc = services()
        factories.BiometricTemplateFactory(
            subject_id=holder_id,
            model="face_recognition/dlib-resnet-v1",
            sealed=(svc.envelope, np.ones(128)),
        )
        enrollment = factories.EnrollmentFactory(subject_id=claimant_id, status="disputed")
        dispute = open_dispute(
            s,
            svc.envelope,
            svc.audit_key,
            enrollment_id=enrollment.id,
            modality="face",
            model="face_recognition/dlib-resnet-v1",
            claimant_subject_id=claimant_id,
            holder_subject_id=holder_id,
            vectors=[np.zeros(128)],
        )
        return dispute.id, enrollment.id


def test_an_operator_resolves_a_dispute_and_both_people_are_told(site):
    operator, _ = _person(site, "op3@example.org", operator=True)
    holder, holder_id = _person(site, "holder@example.org")
    claimant, claimant_id = _person(site, "claimant@example.org", accept_language="zh-CN,zh")
    dispute_id, _ = _dispute(site, holder_id, claimant_id)
    assert "您录入的人脸与另一个账户的相符" in claimant.get("/")
    assert "Another account tried to enroll a face that matches yours" in holder.get("/")
    page = f"/operator/disputes/{dispute_id}"
    assert "claimant@example.org" in operator.get(page)
    assert claimant.client.get(page).status_code == 403

    response = operator.post(page, {"resolution": "awarded_claimant", "note": "ID checked"})
    assert response.status_code == 302
    with site.app.app_context():
        s = db.session()
        owners = [t.subject_id for t in s.exec(select(BiometricTemplate))]
        assert owners.count(claimant_id) == 1 and holder_id not in owners
        assert s.get(EnrollmentDispute, dispute_id).status == "awarded_claimant"
    mails: dict[str, str] = {}  # everything each person was mailed (opened, then resolved)
    languages: dict[str, set[str]] = {}
    for mail in read_outbox(site.settings.mail_outbox_dir):
        mails[mail["to"]] = mails.get(mail["to"], "") + mail["subject"] + mail["body"]
        languages.setdefault(mail["to"], set()).add(mail["language"])
    # Each in the language of their account: the claimant signed up in Chinese.
    assert languages["claimant@example.org"] == {"zh-CN"}
    to_claimant = mails["claimant@example.org"]
    assert "关于您的录入：运营人员已作出决定" in to_claimant
    assert "运营人员已处理关于您的人脸的争议：它现已录入到您的账户。" in to_claimant
    assert "您录入的人脸与另一个账户的相符" in to_claimant and "operator" not in to_claimant
    assert languages["holder@example.org"] == {"en"}
    assert "awarded to the other account" in mails["holder@example.org"]
    assert "Another account tried to enroll a face" in mails["holder@example.org"]
    assert "运营人员" not in mails["holder@example.org"]
    assert "它现已录入到您的账户" in claimant.get("/")
    assert "it was awarded to the other account" in holder.get("/")
    # The same notices, read in another language: rendered for the page, not stored as prose.
    holder.post("/language", {"lang": "zh-CN", "next": "/"}, form_page="/")
    dashboard = holder.get("/")
    assert "它已判归另一个账户，您的人脸模板已被删除" in dashboard
    assert "另一个账户试图录入与您相符的人脸" in dashboard and "awarded" not in dashboard
    assert "awarded_claimant" in operator.get(page)


def test_a_claimant_who_loses_reads_why_on_the_enrollment_page_in_their_language(site):
    operator, _ = _person(site, "op5@example.org", operator=True)
    _, holder_id = _person(site, "first@example.org")
    claimant, claimant_id = _person(site, "second@example.org", accept_language="zh-CN,zh")
    dispute_id, enrollment_id = _dispute(site, holder_id, claimant_id)
    page = f"/operator/disputes/{dispute_id}"
    assert operator.post(page, {"resolution": "kept_holder", "note": ""}).status_code == 302
    told = "运营人员已处理关于您的人脸的争议：它仍归最先录入它的账户所有。"
    assert told in claimant.get(f"/enrollments/{enrollment_id}")
    assert told in claimant.get("/enroll")  # the recent enrollments
    with site.app.app_context():
        row = db.session().get(Enrollment, enrollment_id)
        assert row.status == "failed" and row.error.startswith("An operator resolved")


def test_audit_and_health_pages(site):
    operator, _ = _person(site, "op4@example.org", operator=True)
    assert "Chain intact" in operator.get("/operator/audit")
    assert "operator.added" in operator.get("/operator/audit")
    page = operator.get("/operator/health")
    assert "No worker heartbeat yet" in page
    assert "unknown" in page  # the in-memory broker of these tests cannot tell its depth
    with site.app.app_context(), db.unit_of_work() as s:
        heartbeat(s, "worker-7", utcnow())
    page = operator.get("/operator/health")
    assert "worker-7" in page and "Last heartbeat" in page
    with site.app.app_context(), db.unit_of_work() as s:
        s.delete(s.get(WorkerHeartbeat, "worker-7"))


def test_with_shards_the_health_page_and_metrics_show_each_shard_queue(make_api_app):
    """GALLERY_SHARDS=2 on a real Redis broker: messages published to the shards' queues and the
    merges' are counted on the page and in /metrics; no worker listens, and the page says so."""
    waiting = {"gallery.face.shard.1": 3, "gallery.voice.shard.0": 1, "gallery.merge": 2}
    with redis_database() as broker:
        site = make_api_app(broker_url=broker, gallery_shards=2)
        operator, _ = _person(site, "op5@example.org", operator=True)
        celery_app = site.app.extensions["celery"]
        for queue, n in waiting.items():
            for _ in range(n):
                celery_app.send_task("gallery.search_shard", args=["face", 1, 2], queue=queue)
        celery_app.send_task("sweep.stale_work", queue="default")

        page = operator.get("/operator/health")
        rows = re.findall(r"<tr><td>([a-z.0-9]+)</td><td>(\d+)</td>\s*<td>(.*?)</td></tr>", page)
        assert {queue: int(depth) for queue, depth, _ in rows} == {
            "gallery.face.shard.0": 0,
            "gallery.voice.shard.0": 1,
            "gallery.face.shard.1": 3,
            "gallery.voice.shard.1": 0,
            "gallery.merge": 2,
        }
        # Redis carries Celery's broadcast, and no worker answered it.
        assert {listening for _, _, listening in rows} == {"<strong>none answered</strong>"}
        assert "split into 2 shards" in page
        assert re.search(r"<tr><td>default</td><td>1</td></tr>", page)  # the other queues too
        reader, _ = _person(site, "op5zh@example.org", operator=True, accept_language="zh-CN")
        chinese = reader.get("/operator/health")
        assert "图库分片" in chinese and "无应答" in chinese and "Workers listening" not in chinese

        metrics = {
            s.labels["queue"]: s.value
            for family in text_string_to_metric_families(site.client().get("/metrics").text)
            if family.name == "consent_queue_depth"
            for s in family.samples
        }
        assert metrics == {
            "matching": 0,
            "webhooks": 0,
            "default": 1,
            "gallery.face.shard.0": 0,
            "gallery.voice.shard.0": 1,
            "gallery.face.shard.1": 3,
            "gallery.voice.shard.1": 0,
            "gallery.merge": 2,
        }


# kombu's own SQLAlchemy models (the embedded broker) use a loader SQLAlchemy 2.1 deprecates.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_on_the_embedded_broker_who_listens_on_a_shard_is_unknown(make_api_app, tmp_path):
    site = make_api_app(broker_url=f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}", gallery_shards=2)
    site.app.extensions["celery"].send_task("gallery.merge_shards", queue="gallery.merge")
    operator, _ = _person(site, "op7@example.org", operator=True)
    page = operator.get("/operator/health")
    rows = re.findall(r"<tr><td>([a-z.0-9]+)</td><td>(\d+)</td>\s*<td>(.*?)</td></tr>", page)
    assert [(queue, depth) for queue, depth, _ in rows][-1] == ("gallery.merge", "1")
    assert {listening for _, _, listening in rows} == {"unknown"}


def test_without_shards_the_health_page_has_no_shard_section(site):
    operator, _ = _person(site, "op6@example.org", operator=True)
    page = operator.get("/operator/health")
    assert "Gallery shards" not in page and "gallery.merge" not in page


def test_cli_adds_operators_and_verifies_the_audit_chain(make_api_app):
    site = make_api_app()
    env = {"CONSENT_SERVICE_HOME": str(site.settings.home), "BROKER_URL": "memory://"}
    runner = CliRunner()
    added = runner.invoke(main, ["operators", "add", "boss@example.org"], env=env)
    assert added.exit_code == 0, added.output
    with site.app.app_context():
        user = db.session().exec(select(User).where(User.email == "boss@example.org")).one()
        assert not user.is_operator  # nobody knows a password yet: the invitation sets it
    boss = Person(site.client())
    link = mailed_link(boss.client, "boss@example.org", "/invitation/")
    accept_invitation(boss, link, "the boss's own password")
    with site.app.app_context():
        user = db.session().exec(select(User).where(User.email == "boss@example.org")).one()
        assert user.is_operator and user.is_verified
    signed_in = sign_in(boss, "boss@example.org", "the boss's own password")
    assert signed_in.headers["Location"].startswith("/account/two-factor")  # required for them

    intact = runner.invoke(main, ["audit", "verify"], env=env)
    assert intact.exit_code == 0, intact.output
    assert "intact" in intact.output

    with site.app.app_context(), db.unit_of_work() as s:
        s.execute(
            text("UPDATE audit_event SET actor = 'someone else' WHERE seq = 1"),
        )
    tampered = runner.invoke(main, ["audit", "verify"], env=env)
    assert tampered.exit_code == 1
    assert "broken at seq 1" in tampered.output
