"""The provider's poll (`GET /api/v1/jobs/<id>`), the API's hottest read, on SQLite and on
PostgreSQL: a job's media in order, its decision and the findings of that decision's revision
with their people, read in one statement (`gate.public.job_view`), agree with the rows the ORM
reads; another provider's job is as unknown as a missing one."""

from __future__ import annotations

import hashlib

from sqlmodel import col, select
from urllib3 import encode_multipart_formdata

from consent_service import db
from consent_service.accounts.models import Subject
from consent_service.consent import service as consent
from consent_service.gate import pipeline
from consent_service.gate.claims import reference
from consent_service.gate.decisions import Analysis, PersonSeen, Signing, redecide
from consent_service.gate.models import Decision, Finding, GateJob, MediaItem
from consent_service.runtime import services
from consent_service.vocabulary import Operation, Role
from tests import factories

MEDIA = [
    ("source", "a.jpg", b"the source"),
    ("target", "b.jpg", b"the target"),
    ("target", "c.jpg", b"more"),
]


def _submit(api) -> dict:
    body, content_type = encode_multipart_formdata(
        [("operation", "face_swap")] + [(role, (name, data)) for role, name, data in MEDIA]
    )
    answer = api.client().post(
        "/api/v1/jobs", data=body, content_type=content_type, headers=api.auth()
    )
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()


def _poll(api, job_id: str, key: str | None = None):
    return api.client().get(f"/api/v1/jobs/{job_id}", headers=api.auth(key))


def test_a_queued_job_shows_its_media_in_order_and_no_findings(api):
    submitted = _submit(api)
    polled = _poll(api, submitted["id"])
    assert polled.status_code == 200
    job = polled.get_json()
    assert job == submitted  # the submission answers with the same view
    assert [
        (m["position"], m["role"], m["filename"], m["sha256"], m["error"]) for m in job["media"]
    ] == [
        (i, role, name, hashlib.sha256(data).hexdigest(), None)
        for i, (role, name, data) in enumerate(MEDIA)
    ]
    assert (job["status"], job["decision"], job["findings"], job["token"], job["label"]) == (
        "queued",
        None,
        [],
        None,
        None,
    )


def _grant(svc, subject_id: int, role: Role) -> None:
    with db.unit_of_work() as s:
        consent.grant(
            s,
            svc.audit_key,
            subject_id,
            consent.GrantRequest([Operation.FACE_SWAP], [role], True, []),
            consent.Evidence(actor="test", identity_method="test"),
        )


def _findings(s, job_id: str, revision: int) -> list[Finding]:
    return list(
        s.exec(
            select(Finding)
            .where(Finding.job_id == job_id, Finding.revision == revision)
            .order_by(col(Finding.id))
        )
    )


def test_a_decided_job_shows_the_findings_of_its_latest_revision_as_the_orm_reads_them(api):
    job_id = _submit(api)["id"]
    with api.app.app_context():
        svc = services()
        with db.unit_of_work() as s, factories.bound(s):
            source, stranger = factories.SubjectFactory().id, factories.SubjectFactory().id
        _grant(svc, source, Role.SOURCE)
        people = [  # not in media order, so the findings' order is their own
            PersonSeen(2, Role.TARGET, (9, 10, 11, 12), stranger, False),
            PersonSeen(0, Role.SOURCE, (1, 2, 3, 4), source, False),
            PersonSeen(1, Role.TARGET, (5, 6, 7, 8), stranger, False),
        ]
        signing = Signing(svc.audit_key, svc.decision_signer, svc.pseudonyms)
        with db.unit_of_work() as s:
            pipeline.record(s, job_id, Analysis(people), signing, svc.media_store)
        first = _poll(api, job_id).get_json()
        # The stranger grants too: the job is decided again (revision 2), now allowed.
        _grant(svc, stranger, Role.TARGET)
        with db.unit_of_work() as s:
            redecide(s, job_id, {}, svc.audit_key, svc.decision_signer, svc.pseudonyms, "test")
        s = db.session()
        decision = s.exec(select(Decision).where(Decision.job_id == job_id)).one()
        provider_id = s.get(GateJob, job_id).provider_id
        refs = {
            p.id: reference(svc.pseudonyms, provider_id, p.public_id, p.created_at)
            for p in s.exec(select(Subject).where(col(Subject.id).in_([source, stranger])))
        }
        expected = {
            revision: [
                (f.media_position, f.role, f.outcome, refs.get(f.subject_id), f.box)
                for f in _findings(s, job_id, revision)
            ]
            for revision in (1, 2)
        }
        media = s.exec(
            select(MediaItem).where(MediaItem.job_id == job_id).order_by(col(MediaItem.position))
        ).all()
    assert (first["decision"], decision.decision, decision.revision) == (
        "needs_consent",
        "allow",
        2,
    )
    assert len(expected[2]) == 3 and expected[1] != expected[2]  # the outcomes changed
    for job, revision in ((first, 1), (_poll(api, job_id).get_json(), 2)):
        assert [
            (f["media"], f["role"], f["outcome"], f["subject_ref"], f["box"])
            for f in job["findings"]
        ] == expected[revision]
        assert [(m["position"], m["role"], m["sha256"]) for m in job["media"]] == [
            (m.position, m.role, m.sha256) for m in media
        ]
    job = _poll(api, job_id).get_json()
    assert (job["decision"], job["reasons"], job["token"]) == (
        "allow",
        list(decision.reasons),
        decision.token,
    )
    assert job["label"] is not None and job["token"]


def test_another_providers_job_and_a_missing_one_are_both_unknown(api):
    job_id = _submit(api)["id"]
    assert _poll(api, job_id).status_code == 200
    other, missing = _poll(api, job_id, api.other_key), _poll(api, "0" * 32)
    assert other.status_code == missing.status_code == 404
    assert other.get_json()["detail"] == missing.get_json()["detail"]
