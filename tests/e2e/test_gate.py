"""The gate end to end: real photos, the real face model in a real Celery worker, on SQLite and
PostgreSQL, with Redis as the broker."""

from __future__ import annotations

import time

import pytest
from PIL import Image
from sqlmodel import select

from consent_service import db
from consent_service.accounts.assurance import set_level
from consent_service.accounts.models import Subject
from consent_service.audit.models import AuditEvent
from consent_service.audit.service import verify
from consent_service.biometrics.models import BiometricTemplate
from consent_service.gate.models import Decision, GateJob, MediaItem
from consent_service.gate.pipeline import PROVIDER_SUSPENDED
from consent_service.gate.service import Upload, submit_job
from consent_service.providers.models import Provider
from consent_service.runtime import services
from consent_service.storage import MediaBlob
from consent_service.tasking import publish
from consent_service.vocabulary import Assurance, Operation, Role
from tests.e2e.conftest import Api
from tests.support import side_by_side

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(stack, photos):
    """Alice (Obama's photos) consents to face swaps by anyone; Bob (Biden) consents too,
    until a test revokes it; a provider with a key, and a second provider."""
    alice = stack.enroll("alice@example.org", photos["obama.jpg"], photos["obama2.jpg"])
    bob = stack.enroll("bob@example.org", photos["biden.jpg"])
    assert (alice.status, alice.template_count) == ("completed", 2), alice.error
    assert (bob.status, bob.template_count) == ("completed", 1), bob.error
    alice_grant = stack.grant(alice.subject_id, Operation.FACE_SWAP)
    bob_grant = stack.grant(bob.subject_id, Operation.FACE_SWAP)
    _, key = stack.provider("Studio A")
    _, other_key = stack.provider("Studio B")
    return {
        "alice": alice,
        "bob": bob,
        "alice_grant": alice_grant,
        "bob_grant": bob_grant,
        "api": Api(stack.client(), key),
        "other": Api(stack.client(), other_key),
    }


def _outcomes(job: dict) -> list[tuple[str, str]]:
    return sorted((f["role"], f["outcome"]) for f in job["findings"])


def test_enrollment_keeps_only_encrypted_templates(stack, world, photos):
    with stack.app.app_context():
        templates = db.session().exec(select(BiometricTemplate)).all()
    assert len(templates) >= 3
    assert {t.model for t in templates} == {"face_recognition/dlib-resnet-v1"}
    # No photo bytes are left in the media store once templates exist.
    assert stack.stored_media() == []
    for t in templates:
        assert len(t.ciphertext) == 12 + 128 * 8 + 16  # nonce + 128 float64 + GCM tag


def test_media_wait_where_every_host_reaches_them(stack, world, photos):
    """On PostgreSQL the uploads wait in the database (no shared folder between web and
    worker): the real worker reads them from there, decides, and the rows are gone."""
    expected = "database" if stack.backend == "postgres" else "local"
    assert stack.settings.media_store_kind == expected
    job = world["api"].gate(source=[photos["obama3.jpg"]])
    assert (job["decision"], _outcomes(job)) == ("allow", [("source", "consented")])
    assert stack.stored_media() == []
    if stack.backend == "postgres":
        assert not stack.settings.media_dir.exists()  # nothing ever written to a folder
        with stack.app.app_context():
            assert db.session().exec(select(MediaBlob)).all() == []


def test_consented_face_is_allowed(world, photos):
    job = world["api"].gate(source=[photos["obama3.jpg"]])
    assert job["decision"] == "allow"
    assert _outcomes(job) == [("source", "consented")]
    assert job["findings"][0]["subject_ref"]
    # Never biometrics or distances in what a provider sees.
    assert not {"embedding", "distance", "score"} & set(job["findings"][0])


def test_unknown_face_needs_consent(world, strangers):
    job = world["api"].gate(target=[strangers[0]])
    assert job["decision"] == "needs_consent"
    assert _outcomes(job) == [("target", "unenrolled")]
    assert job["findings"][0]["subject_ref"] is None


def test_enrolled_person_without_a_covering_grant_needs_consent(world, photos):
    job = world["api"].gate("face_reenactment", target=[photos["biden.jpg"]])
    assert job["decision"] == "needs_consent"
    assert job["reasons"] == ["not_covered"]


def test_two_faces_one_unenrolled_needs_consent(world, photos, strangers, tmp_path):
    pair = side_by_side(tmp_path / "pair.jpg", photos["obama3.jpg"], strangers[1])
    job = world["api"].gate(target=[pair])
    assert job["decision"] == "needs_consent"
    assert _outcomes(job) == [("target", "consented"), ("target", "unenrolled")]


def test_grant_for_one_provider_covers_only_that_provider(stack, world, strangers):
    dave = stack.enroll("dave@example.org", strangers[2])
    assert dave.status == "completed", dave.error
    studio_b = world["other"]
    with stack.app.app_context():
        from consent_service.providers.service import find_provider

        b_id = find_provider(db.session(), "Studio B").id
    stack.grant(dave.subject_id, Operation.FACE_SWAP, provider_ids=[b_id])
    assert world["api"].gate(source=[strangers[2]])["reasons"] == ["not_covered"]
    assert studio_b.gate(source=[strangers[2]])["decision"] == "allow"


def test_face_of_another_account_cannot_be_enrolled(stack, world, photos):
    carol = stack.enroll("carol@example.org", photos["obama3.jpg"])
    # Obama's face is Alice's already: a second account's enrollment waits on a dispute for an
    # operator (tests/e2e/test_operators.py resolves one), and no template of it is made.
    assert carol.status == "disputed"
    assert "already enrolled" in carol.error
    assert carol.template_count == 0
    with stack.app.app_context():
        owners = {t.subject_id for t in db.session().exec(select(BiometricTemplate))}
    assert carol.subject_id not in owners


def test_enrollment_refuses_photos_that_are_not_one_person(
    stack, world, photos, strangers, tmp_path
):
    group = stack.enroll("gina@example.org", photos["t1.jpg"])
    assert group.status == "failed" and "shows 6 faces" in group.error
    mixed = stack.enroll("hal@example.org", strangers[4], strangers[5])
    assert mixed.status == "failed" and "not all show the same person" in mixed.error
    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 300), "white").save(blank)
    empty = stack.enroll("ivy@example.org", blank)
    assert empty.status == "failed" and "no face was found" in empty.error
    assert stack.stored_media() == []


def test_redelivered_job_is_decided_once(stack, world, photos):
    job = world["api"].gate(source=[photos["obama3.jpg"]])
    for _ in range(4):  # the broker hands the same job out again (redelivery, duplicates)
        publish(stack.app, "gate.process_job", job["id"])
    publish(stack.app, "gate.process_job", "no-such-job")
    marker = world["api"].gate(source=[photos["obama3.jpg"]])  # queued behind the duplicates
    assert marker["decision"] == "allow"
    with stack.app.app_context():
        s = db.session()
        assert len(s.exec(select(Decision).where(Decision.job_id == job["id"])).all()) == 1
        decided = [
            e
            for e in s.exec(select(AuditEvent).where(AuditEvent.event_type == "gate.decided"))
            if e.payload["job_id"] == job["id"]
        ]
        assert len(decided) == 1
    assert world["api"].job(job["id"]).get_json()["attempts"] == 1


def test_no_face_is_denied(world, tmp_path):
    blank = tmp_path / "wall.png"
    Image.new("RGB", (320, 240), (200, 190, 180)).save(blank)
    job = world["api"].gate(source=[blank])
    assert job["decision"] == "deny"
    assert job["reasons"] == ["no_face_found"]


def test_corrupt_image_is_rejected_with_a_message(world, photos):
    truncated = photos["obama3.jpg"].read_bytes()[:2000]
    response = world["api"].submit(raw={"source": ("broken.jpg", truncated)})
    job = world["api"].wait(response.get_json()["id"])
    assert job["decision"] == "deny"
    assert job["reasons"] == ["rejected_input"]
    assert "damaged or truncated" in job["media"][0]["error"]


def test_idempotency_key_returns_the_same_job(world, photos):
    first = world["api"].submit(source=[photos["obama3.jpg"]], headers={"Idempotency-Key": "k1"})
    again = world["api"].submit(source=[photos["obama3.jpg"]], headers={"Idempotency-Key": "k1"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert world["api"].wait(first.get_json()["id"])["decision"] == "allow"


def test_other_providers_job_is_not_found(world, photos):
    job = world["api"].gate(source=[photos["obama3.jpg"]])
    response = world["other"].job(job["id"])
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert job["id"] not in response.get_data(as_text=True)


def test_bad_api_keys_get_the_same_401(world):
    answers = set()
    for key in (None, "nonsense", "cs_deadbeef_" + "x" * 43, "Bearer"):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = world["api"].client.get("/api/v1/jobs/whatever", headers=headers)
        answers.add((response.status_code, response.get_data()))
    assert len(answers) == 1 and answers.pop()[0] == 401


def test_revocation_turns_allow_into_deny(stack, world, photos, tmp_path):
    pair = side_by_side(tmp_path / "pair.jpg", photos["obama3.jpg"], photos["biden.jpg"])
    before = world["api"].gate(target=[pair])
    assert before["decision"] == "allow"
    assert _outcomes(before) == [("target", "consented"), ("target", "consented")]
    stack.revoke(world["bob"].subject_id, world["bob_grant"].grant_id)
    after = world["api"].gate(target=[pair])
    assert after["decision"] == "deny"
    assert after["reasons"] == ["revoked"]
    assert _outcomes(after) == [("target", "consented"), ("target", "revoked")]


def _set_level(stack, subject_id: int, level: Assurance) -> None:
    """What the live consent session and the operator's review do (through `set_level`)."""
    with stack.app.app_context(), db.unit_of_work() as s:
        subject = s.get(Subject, subject_id)
        set_level(s, services().audit_key, subject, level, actor="test", reason="test")


def test_a_provider_s_minimum_holds_back_an_uploaded_enrollment_until_it_is_met(
    stack, world, photos
):
    studio_b, alice = world["other"], world["alice"].subject_id
    minimums = "/api/v1/assurance-minimums"
    with stack.app.app_context():
        # Enrolled from photos by the worker (an operator's import): the lowest level.
        assert db.session().get(Subject, alice).assurance == "uploaded"
    require_live = {"minimums": {"face_swap": "live"}}
    put = studio_b.client.put(minimums, json=require_live, headers=studio_b.headers)
    assert put.status_code == 200 and put.get_json() == require_live
    try:
        held = studio_b.gate(source=[photos["obama3.jpg"]])
        assert (held["decision"], held["reasons"]) == ("needs_consent", ["assurance_too_low"])
        assert held["assurance_required"] == "live"
        assert [(f["outcome"], f["assurance"]) for f in held["findings"]] == [
            ("assurance_too_low", "uploaded")
        ]
        checked = studio_b.client.post("/api/v1/decisions/verify", json={"token": held["token"]})
        claims = checked.get_json()["claims"]
        assert (claims["reasons"], claims["assurance_required"]) == (["assurance_too_low"], "live")
        assert [f["assurance"] for f in claims["findings"]] == ["uploaded"]
        # Studio A requires nothing: the same face, the same grant, allowed there.
        assert world["api"].gate(source=[photos["obama3.jpg"]])["decision"] == "allow"

        # The person is raised to `live` (as a passed live consent session does): allowed.
        _set_level(stack, alice, Assurance.LIVE)
        raised = studio_b.gate(source=[photos["obama3.jpg"]])
        assert (raised["decision"], raised["assurance_required"]) == ("allow", "live")
        assert [f["assurance"] for f in raised["findings"]] == ["live"]

        # Back to `uploaded`; then the provider lowers its minimum: allowed again.
        _set_level(stack, alice, Assurance.UPLOADED)
        assert studio_b.gate(source=[photos["obama3.jpg"]])["reasons"] == ["assurance_too_low"]
        lowered = studio_b.client.put(minimums, json={"minimums": {}}, headers=studio_b.headers)
        assert lowered.get_json() == {"minimums": {}}
        allowed = studio_b.gate(source=[photos["obama3.jpg"]])
        assert (allowed["decision"], allowed["assurance_required"]) == ("allow", None)
    finally:
        studio_b.client.put(minimums, json={"minimums": {}}, headers=studio_b.headers)
        _set_level(stack, alice, Assurance.UPLOADED)


def test_every_decision_is_in_an_intact_audit_chain(stack, world):
    with stack.app.app_context():
        report = verify(db.session(), services().audit_key)
    assert report.ok, report
    assert report.checked > 10


def test_a_job_queued_before_its_provider_is_suspended_is_not_decided(stack, photos):
    """The operator suspends a provider while its job waits in the queue: the worker ends the
    job without a decision (no token is signed for a suspended provider) and destroys its media."""
    provider_id, _ = stack.provider("Studio Suspended")
    with stack.app.app_context(), db.unit_of_work() as s:
        provider = s.get(Provider, provider_id)
        upload = Upload(Role.SOURCE, "obama3.jpg", photos["obama3.jpg"].read_bytes())
        job, _ = submit_job(s, services().media_store, provider, Operation.FACE_SWAP, [upload])
        provider.status = "suspended"  # the job's task is sent only after this commit
        job_id = job.id
    deadline = time.monotonic() + 120
    while True:
        with stack.app.app_context():
            s = db.session()
            job = s.get(GateJob, job_id)
            if job.status == "failed" or time.monotonic() > deadline:
                break
            s.close()
        time.sleep(0.5)
    assert (job.status, job.error) == ("failed", PROVIDER_SUSPENDED)
    assert s.get(Decision, job_id) is None
    items = s.exec(select(MediaItem).where(MediaItem.job_id == job_id)).all()
    assert items and all(i.storage_key is None for i in items)
    failed = [
        e
        for e in s.exec(select(AuditEvent).where(AuditEvent.event_type == "gate.failed"))
        if e.payload["job_id"] == job_id
    ]
    assert len(failed) == 1
    s.close()
