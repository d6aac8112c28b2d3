"""The gate's pipeline step by step (claim, analyse, record) and as its task runs it, with a
stand-in face finder: every reason code and decision without a worker or dlib. The real path
(dlib, a Celery worker, a broker) stays covered by tests/e2e/test_gate.py."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import threading
import wave
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from flask import current_app
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, col, select

import consent_service.gate.revocations  # noqa: F401 - connects the consent.revoked receiver
from consent_service import db
from consent_service.accounts.models import Subject, User
from consent_service.audit import merkle
from consent_service.audit.models import AuditEvent
from consent_service.biometrics.matching import Gallery, Rule
from consent_service.biometrics.models import BiometricTemplate
from consent_service.biometrics.service import (
    seal_template,
)
from consent_service.biometrics.shards import ShardedIndex, ShardsUnavailable
from consent_service.biometrics.voice_service import VoiceMatching
from consent_service.consent import service as consent
from consent_service.consent.models import ConsentGrant, Purpose
from consent_service.consent.purposes import DEFAULT_PURPOSES
from consent_service.crypto import StaticKeys
from consent_service.gate import decisions, pipeline, tasks
from consent_service.gate.decisions import Analysis, PersonSeen, Signing
from consent_service.gate.models import Decision, DecisionRevision, Finding, FindingFace, GateJob
from consent_service.gate.service import PROCESS_JOB, Upload, submit_job
from consent_service.keyring import Pseudonyms
from consent_service.notices.models import SubjectNotice
from consent_service.providers.models import Provider
from consent_service.providers.service import create_provider, set_assurance_minimums
from consent_service.timeutil import utcnow
from consent_service.tokens.service import DecisionSigner, KeyRing, generate_key, verify_token
from consent_service.vocabulary import Assurance, GrantStatus, Modality, Operation, Role
from consent_service.webhooks import service as webhooks
from consent_service.webhooks.models import WebhookDelivery
from tests.fakes import vector

AUDIT_KEY = StaticKeys.single(b"a" * 32)
PSEUDONYMS = Pseudonyms.single(b"p" * 32)
MAX_ATTEMPTS = 3
LEASE = timedelta(minutes=5)
DELIVERY = pipeline.Delivery("m1", LEASE)
ALICE, BOB = 1, 2  # the faces (vectors) of the enrolled people in these tests


@pytest.fixture(autouse=True)
def units(worker_context):
    """Each step runs in its own unit of work, as in a worker; yields the tasks sent."""
    return worker_context


@pytest.fixture
def signing(envelope) -> Signing:
    signer = DecisionSigner(KeyRing((generate_key(),)), "consent-service", timedelta(days=1))
    return Signing(AUDIT_KEY, signer, PSEUDONYMS, envelope, timedelta(days=7))


@pytest.fixture
def provider_id() -> str:
    with db.unit_of_work() as s:
        return create_provider(s, "acme").id


@pytest.fixture
def enroll(envelope, faces):
    """enroll(face, protect_only=False) -> subject id, with a template of that face."""

    def make(face: int, protect_only: bool = False) -> int:
        with db.unit_of_work() as s:
            user = User(email=f"p{face}@example.org", password_hash="-", email_verified_at=utcnow())
            s.add(user)
            s.flush()
            subject = Subject(user_id=user.id, protect_only=protect_only)
            s.add(subject)
            s.flush()
            t = BiometricTemplate(
                subject_id=subject.id,
                modality="face",
                model=faces.model_name,
                ciphertext=b"",
                wrapped_key=b"",
            )
            seal_template(envelope, t, vector(face))
            s.add(t)
            assert subject.id is not None
            return subject.id

    return make


def _grant(subject_id: int, *, provider_ids: list[str] | None = None) -> str:
    with db.unit_of_work() as s:
        return consent.grant(
            s,
            AUDIT_KEY,
            subject_id,
            consent.GrantRequest(
                operations=[Operation.FACE_SWAP],
                roles=[Role.SOURCE, Role.TARGET],
                all_providers=provider_ids is None,
                provider_ids=provider_ids or [],
            ),
            consent.Evidence(actor="test", identity_method="test"),
        ).grant_id


def _set_grant(grant_id: str, **changes) -> None:
    with db.unit_of_work() as s:
        row = s.exec(select(ConsentGrant).where(ConsentGrant.grant_id == grant_id)).one()
        for name, value in changes.items():
            setattr(row, name, value)
        s.add(row)


@pytest.fixture
def submit(store, provider_id, units):
    """submit(picture, …) -> job id: a committed, queued face_swap job (each as a source)."""

    def make(*pictures: bytes, operation: Operation = Operation.FACE_SWAP) -> str:
        with db.unit_of_work() as s:
            provider = s.get(Provider, provider_id)
            uploads = [Upload(Role.SOURCE, f"{n}.png", p) for n, p in enumerate(pictures)]
            job, created = submit_job(s, store, provider, operation, uploads)
            assert created
            job_id = job.id
        assert units[-1] == (PROCESS_JOB, [job_id])  # sent once the job was committed
        return job_id

    return make


def _claim(job_id: str, store, message: str = "m1") -> pipeline.Claim | pipeline.Ended:
    with db.unit_of_work() as s:
        delivery = pipeline.Delivery(message, LEASE)
        return pipeline.claim(s, job_id, delivery, MAX_ATTEMPTS, AUDIT_KEY, store)


def _analyse(claimed, store, matching) -> Analysis:
    with db.unit_of_work() as s:
        matcher = pipeline.matcher(s, claimed.operation, matching)
    return pipeline.analyse(pipeline.load(store, claimed), claimed.operation, matcher)


def _record(job_id: str, analysis: Analysis, signing, store) -> str:
    with db.unit_of_work() as s:
        return pipeline.record(s, job_id, analysis, signing, store)


def _run(job_id, store, matching, signing) -> str:
    return tasks.decide(job_id, DELIVERY, store, matching, None, signing, MAX_ATTEMPTS)


def _job(job_id: str) -> GateJob:
    with db.unit_of_work() as s:
        job = s.get(GateJob, job_id)
        assert job is not None
        return job


def _decision(job_id: str) -> Decision | None:
    with db.unit_of_work() as s:
        return s.get(Decision, job_id)


def _outcomes(job_id: str) -> list[str]:
    with db.unit_of_work() as s:
        return [
            f.outcome
            for f in s.exec(select(Finding).where(Finding.job_id == job_id).order_by(Finding.id))
        ]


def _events(kind: str) -> list[AuditEvent]:
    with db.unit_of_work() as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.event_type == kind)))


def _stored(store) -> list[str]:
    return sorted(p.name for p in store.root.iterdir()) if store.root.is_dir() else []


# ---------------------------------------------------------------------------- 1. claim
def test_claim_counts_the_attempt_before_anything_is_decoded(submit, faces, store):
    job_id = submit(faces.picture(vector(ALICE)))
    claimed = _claim(job_id, store)
    assert isinstance(claimed, pipeline.Claim)
    assert (claimed.operation, claimed.attempts) == (Operation.FACE_SWAP, 1)
    assert [(p, r) for p, r, _ in claimed.media] == [(0, Role.SOURCE)]
    job = _job(job_id)
    assert (job.status, job.attempts) == ("processing", 1)  # committed by the claim's unit


def test_claim_ends_the_job_of_a_suspended_provider_and_destroys_its_media(
    submit, faces, store, provider_id
):
    job_id = submit(faces.picture(vector(ALICE)))
    with db.unit_of_work() as s:
        s.get(Provider, provider_id).status = "suspended"
    assert len(_stored(store)) == 1
    assert _claim(job_id, store) == pipeline.Ended("failed")
    job = _job(job_id)
    assert (job.status, job.error, job.attempts) == ("failed", pipeline.PROVIDER_SUSPENDED, 1)
    assert _decision(job_id) is None
    assert _stored(store) == []  # deleted after the commit
    assert [e.payload["job_id"] for e in _events("gate.failed")] == [job_id]
    assert [e.payload["job_id"] for e in _events("media.destroyed")] == [job_id]


def test_claim_ends_a_job_whose_media_failed_too_many_times(submit, faces, store):
    job_id = submit(faces.picture(vector(ALICE)))
    with db.unit_of_work() as s:
        s.get(GateJob, job_id).attempts = MAX_ATTEMPTS  # crashed the worker MAX_ATTEMPTS times
    assert _claim(job_id, store) == pipeline.Ended("failed")
    job = _job(job_id)
    assert job.error == f"The media could not be processed after {MAX_ATTEMPTS} attempts."
    assert job.attempts == MAX_ATTEMPTS + 1 and _stored(store) == []


def test_a_second_message_for_a_job_another_holds_is_not_an_attempt(submit, faces, store):
    """The same job delivered several times at once (a duplicate publish, a sweep racing the
    first delivery): the copies leave it to the first claim and use up none of its attempts."""
    job_id = submit(faces.picture(vector(ALICE)))
    assert isinstance(_claim(job_id, store, "m1"), pipeline.Claim)
    for copy in ("m2", "m3", "m4", "m5"):
        assert _claim(job_id, store, copy) == pipeline.Ended("processing")
    job = _job(job_id)
    assert (job.status, job.attempts, job.claimed_by) == ("processing", 1, "m1")


def test_the_same_message_back_after_its_worker_died_is_a_retry(submit, faces, store):
    job_id = submit(faces.picture(vector(ALICE)))
    for attempt in range(1, MAX_ATTEMPTS + 1):
        claimed = _claim(job_id, store, "m1")  # redelivered under its own id each time
        assert isinstance(claimed, pipeline.Claim) and claimed.attempts == attempt
    assert _claim(job_id, store, "m1") == pipeline.Ended("failed")  # poison: ends failed


def test_once_the_lease_has_run_out_another_message_takes_the_job_over(submit, faces, store):
    job_id = submit(faces.picture(vector(ALICE)))
    assert isinstance(_claim(job_id, store, "m1"), pipeline.Claim)
    with db.unit_of_work() as s:  # m1's worker died and its message was lost
        s.get(GateJob, job_id).claimed_until = utcnow() - timedelta(seconds=1)
    claimed = _claim(job_id, store, "sweep")
    assert isinstance(claimed, pipeline.Claim) and claimed.attempts == 2
    assert _job(job_id).claimed_by == "sweep"


def test_claim_leaves_an_ended_or_missing_job_alone(submit, faces, store, matching, signing):
    job_id = submit(faces.picture())
    assert _run(job_id, store, matching, signing) == "decided"
    assert _claim(job_id, store) == pipeline.Ended("decided")
    assert _job(job_id).attempts == 1  # not counted again
    assert _claim("no-such-job", store) == pipeline.Ended(pipeline.MISSING)


# ---------------------------------------------------------------------------- 2. analyse
def _gallery(*people: tuple[int, int]) -> Gallery:
    """A gallery snapshot: (subject id, face) pairs."""
    return Gallery.build(1, [(subject, vector(face)) for subject, face in people])


def _face_matcher(matching, *people) -> pipeline.FaceMatcher:
    return pipeline.FaceMatcher(matching, _gallery(*people))


@pytest.mark.parametrize(("rule", "found"), [(Rule.NEAREST, 10), (Rule.MEAN, None)])
def test_the_face_matcher_decides_by_the_matchings_per_person_rule(faces, matching, rule, found):
    # Subject 10 has one template of this face and two far from it: the nearest template names
    # them, the mean over their templates (0.94 > 0.75) does not.
    media = [(0, Role.SOURCE, faces.picture(vector(ALICE)))]
    matcher = _face_matcher(replace(matching, rule=rule), (10, ALICE), (10, 5), (10, 6), (20, BOB))
    (person,) = pipeline.analyse(media, Operation.FACE_SWAP, matcher).people
    assert (person.subject_id, person.ambiguous) == (found, False)


def test_analyse_names_every_person_in_every_item(faces, matching):
    media = [
        (0, Role.SOURCE, faces.picture(vector(ALICE), vector(BOB))),
        (1, Role.TARGET, faces.picture(vector(7))),
    ]
    analysis = pipeline.analyse(
        media, Operation.FACE_SWAP, _face_matcher(matching, (10, ALICE), (20, BOB))
    )
    assert analysis.problems == {}
    assert [(p.position, p.role, p.subject_id, p.ambiguous) for p in analysis.people] == [
        (0, Role.SOURCE, 10, False),
        (0, Role.SOURCE, 20, False),
        (1, Role.TARGET, None, False),  # nobody enrolled looks like this
    ]
    assert np.array_equal(analysis.people[2].embedding, vector(7))  # kept for a request


def test_analyse_calls_a_face_between_two_enrolled_people_ambiguous(faces, matching):
    media = [(0, Role.SOURCE, faces.picture(vector(ALICE, BOB)))]
    analysis = pipeline.analyse(
        media, Operation.FACE_SWAP, _face_matcher(matching, (10, ALICE), (20, BOB))
    )
    [person] = analysis.people
    assert (person.subject_id, person.ambiguous) == (None, True)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (None, ("rejected_input", "The media is no longer stored.")),
        (b"hello", ("rejected_input", "The file is not an image we can read")),
        (b"", ("rejected_input", "The file is empty.")),
        ("nobody", ("no_face_found", "No face was found in this media.")),
    ],
)
def test_analyse_notes_each_item_that_cannot_be_used(faces, matching, data, problem):
    if data == "nobody":
        data = faces.picture()
    analysis = pipeline.analyse(
        [(0, Role.SOURCE, data)], Operation.FACE_SWAP, _face_matcher(matching)
    )
    code, message = analysis.problems[0]
    assert code == problem[0] and message.startswith(problem[1])
    assert analysis.people == []


def test_analyse_notes_a_recording_in_which_nobody_speaks(matching):
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(3 * 16000, "<i2").tobytes())
    voices = VoiceMatching(
        embedder=None,  # type: ignore[arg-type]  # never asked: no speech, nothing to embed
        gallery=matching.gallery,
        tolerance=0.65,
        margin=0.05,
        same_speaker=0.7,
        max_seconds=60,
    )
    matcher = pipeline.VoiceMatcher(voices, Gallery.build(1, []))
    analysis = pipeline.analyse(
        [(0, Role.SOURCE, out.getvalue())], Operation.VOICE_CLONING, matcher
    )
    assert analysis.problems == {0: ("no_voice_found", "No speech was heard in this media.")}


def test_analyse_refuses_a_matcher_of_the_wrong_modality(matching):
    with pytest.raises(ValueError, match="face matcher"):
        pipeline.analyse([], Operation.VOICE_CLONING, _face_matcher(matching))


# ---------------------------------------------------------------------------- 3. record
@pytest.mark.parametrize(
    ("situation", "outcome", "decision", "reasons"),
    [
        ("consented", "consented", "allow", ["all_consented"]),
        ("refused", "refused", "deny", ["refused"]),
        ("revoked", "revoked", "deny", ["revoked"]),
        ("expired", "expired", "needs_consent", ["expired"]),
        ("other provider", "not_covered", "needs_consent", ["not_covered"]),
        ("no grant", "not_covered", "needs_consent", ["not_covered"]),
        ("unenrolled", "unenrolled", "needs_consent", ["unenrolled"]),
        ("ambiguous", "ambiguous", "needs_consent", ["ambiguous"]),
        ("protect only", "protected", "deny", ["protected"]),
        ("nobody", None, "deny", ["no_face_found"]),
    ],
)
def test_every_policy_outcome_is_recorded_signed_and_audited(
    submit,
    faces,
    store,
    matching,
    signing,
    enroll,
    provider_id,
    situation,
    outcome,
    decision,
    reasons,
):
    alice = enroll(ALICE, protect_only=situation == "protect only")
    enroll(BOB)
    if situation in ("consented", "refused", "revoked", "expired"):
        grant_id = _grant(alice)
        if situation == "refused":
            _set_grant(grant_id, status=GrantStatus.REFUSED.value)
        if situation == "revoked":
            with db.unit_of_work() as s:
                consent.revoke(s, AUDIT_KEY, alice, grant_id, consent.Evidence("test", "test"))
        if situation == "expired":
            _set_grant(grant_id, valid_until=utcnow() - timedelta(days=1))
    if situation == "other provider":
        with db.unit_of_work() as s:
            other = create_provider(s, "other").id
        _grant(alice, provider_ids=[other])
    face = {"unenrolled": vector(9), "ambiguous": vector(ALICE, BOB)}.get(situation, vector(ALICE))
    job_id = submit(faces.picture() if situation == "nobody" else faces.picture(face))

    claimed = _claim(job_id, store)
    analysis = _analyse(claimed, store, matching)
    assert _record(job_id, analysis, signing, store) == "decided"

    stored = _decision(job_id)
    assert (stored.decision, stored.reasons, stored.revision) == (decision, reasons, 1)
    assert _outcomes(job_id) == ([outcome] if outcome else [])
    claims, _ = verify_token(stored.token, signing.signer.keys.public_keys(), audience=provider_id)
    assert (claims["sub"], claims["decision"], claims["reasons"]) == (job_id, decision, reasons)
    assert [f["outcome"] for f in claims["findings"]] == ([outcome] if outcome else [])
    with db.unit_of_work() as s:
        (revision,) = s.exec(select(DecisionRevision).where(DecisionRevision.job_id == job_id))
        kept = s.exec(select(FindingFace).where(FindingFace.job_id == job_id)).all()
    assert (revision.decision, revision.jti, revision.cause) == (decision, stored.jti, "media")
    # The face of someone the decision could not name is kept, sealed, for a consent request.
    assert len(kept) == (1 if situation in ("unenrolled", "ambiguous") else 0)
    [audited] = [e for e in _events("gate.decided") if e.payload["job_id"] == job_id]
    assert audited.payload["decision"] == decision and audited.payload["token_jti"] == stored.jti
    # The token names the audit tree it was recorded under: the log just before its own entry.
    with db.unit_of_work() as s:
        leaves = [e.leaf_hash for e in s.exec(select(AuditEvent).order_by(col(AuditEvent.seq)))]
    size = audited.seq - 1
    assert claims["audit_checkpoint"] == {
        "size": size,
        "root": base64.b64encode(merkle.root([bytes.fromhex(h) for h in leaves[:size]])).decode(),
    }
    assert _job(job_id).status == "decided" and _stored(store) == []
    # The person is told, in the transaction of the decision, when it did not allow the edit
    # because of them; an unnamed or ambiguous face tells nobody.
    told = {"consented": None, "unenrolled": None, "ambiguous": None, "nobody": None}
    key = told.get(situation, f"attempt.{outcome}")
    assert [(n.message_key, n.params["job_id"], n.params["revision"]) for n in _told(alice)] == (
        [(key, job_id, "1")] if key else []
    )


def _told(subject_id: int) -> list[SubjectNotice]:
    with db.unit_of_work() as s:
        return list(
            s.exec(
                select(SubjectNotice)
                .where(SubjectNotice.subject_id == subject_id)
                .order_by(col(SubjectNotice.id))
            )
        )


def test_a_person_found_twice_in_a_job_is_told_once_with_the_most_telling_outcome(
    submit, faces, store, signing, enroll, provider_id
):
    alice, bob = enroll(ALICE, protect_only=True), enroll(BOB)
    job_id = submit(faces.picture(vector(ALICE)))
    people = [_seen(alice), _seen(alice, Role.TARGET), _seen(bob), _seen(bob, Role.TARGET)]
    _decide_people(job_id, people, signing, store)
    [told] = _told(alice)
    assert (told.kind, told.message_key, told.mailed_at) == ("attempt", "attempt.protected", None)
    assert told.params["provider"] == "acme" and told.params["operation"] == "face_swap"
    assert told.message.endswith("(face swap). You are protect-only, so the edit was denied.")
    assert [n.message_key for n in _told(bob)] == ["attempt.not_covered"]


def test_a_person_whose_grants_do_not_cover_the_job_s_purpose_is_told_which_purpose(
    store, provider_id, faces, signing, enroll
):
    alice = enroll(ALICE)
    with db.unit_of_work() as s:
        for code, english, chinese in DEFAULT_PURPOSES:  # what migration 0033 seeds
            s.add(Purpose(code=code, label_en=english, label_zh=chinese))
        s.flush()
        consent.grant(
            s,
            AUDIT_KEY,
            alice,
            consent.GrantRequest(
                operations=[Operation.FACE_SWAP],
                roles=[Role.SOURCE, Role.TARGET],
                all_providers=True,
                provider_ids=[],
                purposes=["education"],
            ),
            consent.Evidence(actor="test", identity_method="test"),
        )
        provider = s.get(Provider, provider_id)
        upload = [Upload(Role.SOURCE, "0.png", faces.picture(vector(ALICE)))]
        job, _ = submit_job(s, store, provider, Operation.FACE_SWAP, upload, purpose="advertising")
        job_id = job.id
    _decide_people(job_id, [_seen(alice)], signing, store)
    [told] = _told(alice)
    assert told.message_key == "attempt.not_covered_purpose"
    assert "(face swap) for Advertising" in told.message
    assert told.message.endswith("None of your grants covers that purpose, so it was not allowed.")
    assert told.params["purpose"] == {"en": "Advertising and marketing", "zh": "广告与营销"}


def test_a_revocation_committed_while_the_media_were_analysed_is_honoured(
    submit, faces, store, matching, signing, enroll
):
    alice = enroll(ALICE)
    grant_id = _grant(alice)
    job_id = submit(faces.picture(vector(ALICE)))
    claimed = _claim(job_id, store)
    analysis = _analyse(claimed, store, matching)
    assert analysis.people[0].subject_id == alice  # matched while the grant was active
    with db.unit_of_work() as s:  # the person revokes before the decision is recorded
        consent.revoke(s, AUDIT_KEY, alice, grant_id, consent.Evidence("test", "test"))
    _record(job_id, analysis, signing, store)
    assert (_decision(job_id).decision, _outcomes(job_id)) == ("deny", ["revoked"])


def test_a_provider_suspended_while_the_media_were_analysed_gets_no_decision(
    submit, faces, store, matching, signing, provider_id
):
    job_id = submit(faces.picture(vector(ALICE)))
    analysis = _analyse(_claim(job_id, store), store, matching)
    with db.unit_of_work() as s:
        s.get(Provider, provider_id).status = "suspended"
    assert _record(job_id, analysis, signing, store) == "failed"
    assert _decision(job_id) is None and _job(job_id).error == pipeline.PROVIDER_SUSPENDED
    assert _stored(store) == []


def test_media_are_deleted_only_once_the_decision_is_committed(
    submit, faces, store, matching, signing
):
    job_id = submit(faces.picture(vector(ALICE)))
    analysis = _analyse(_claim(job_id, store), store, matching)
    with pytest.raises(RuntimeError, match="crash"), db.unit_of_work() as s:
        pipeline.record(s, job_id, analysis, signing, store)
        assert len(_stored(store)) == 1  # recorded, not committed: the file is still there
        raise RuntimeError("crash before the commit")
    assert len(_stored(store)) == 1 and _decision(job_id) is None  # rolled back, file kept
    with db.unit_of_work() as s:
        assert s.get(GateJob, job_id).status == "processing"
    _record(job_id, analysis, signing, store)
    assert _stored(store) == [] and _decision(job_id) is not None


def test_a_second_record_is_a_no_op(submit, faces, store, matching, signing):
    job_id = submit(faces.picture(vector(9)))
    analysis = _analyse(_claim(job_id, store), store, matching)
    assert _record(job_id, analysis, signing, store) == "decided"
    first = _decision(job_id)
    assert _record(job_id, analysis, signing, store) == "decided"
    assert _decision(job_id).jti == first.jti
    with db.unit_of_work() as s:
        count = s.exec(select(func.count()).select_from(DecisionRevision)).one()
    assert count == 1 and len(_events("gate.decided")) == 1 and _outcomes(job_id) == ["unenrolled"]


# ---------------------------------------------------------------------------- the task
def test_the_task_decides_once_and_sends_the_webhook_after_the_commit(
    submit, faces, store, matching, signing, enroll, provider_id, envelope, units
):
    with db.unit_of_work() as s:
        webhooks.configure(
            s, envelope, s.get(Provider, provider_id), "http://127.0.0.1/in", allow_private=True
        )
    _grant(enroll(ALICE))
    job_id = submit(faces.picture(vector(ALICE)), faces.picture(vector(ALICE)))
    assert _run(job_id, store, matching, signing) == "decided"
    assert _decision(job_id).decision == "allow" and _stored(store) == []
    assert units[-1][0] == webhooks.DELIVER_TASK  # the job.decided delivery, sent after commit
    sent = len(units)
    assert _run(job_id, store, matching, signing) == "decided"  # a duplicate message
    assert len(units) == sent and _job(job_id).attempts == 1


def test_a_decision_recorded_first_by_a_concurrent_delivery_is_left_to_it(
    submit, faces, store, matching, signing
):
    job_id = submit(faces.picture(vector(ALICE)))
    analysis = _analyse(_claim(job_id, store), store, matching)
    with db.unit_of_work() as s:  # the other delivery's decision, its job not yet marked
        s.add(Decision(job_id=job_id, decision="deny", reasons=["no_face_found"]))
    with pytest.raises(IntegrityError):
        _record(job_id, analysis, signing, store)
    assert len(_stored(store)) == 1  # this delivery destroyed nothing: the other one does
    # The task reports it as decided, as before.
    assert tasks.decide(job_id, DELIVERY, store, matching, None, signing, MAX_ATTEMPTS) == "decided"


def test_a_refusal_other_than_a_concurrent_decision_ends_the_job_failed(
    submit, faces, store, matching, signing
):
    """Only the decision's own key means "decided by a concurrent delivery": a foreign-key
    refusal would refuse every retry, so the job ends failed and its media are destroyed."""
    job_id = submit(faces.picture(vector(ALICE)))
    _claim(job_id, store)
    # A person whose row is gone by the time the finding is written (foreign key to subject).
    ghost = Analysis([PersonSeen(0, Role.SOURCE, (1, 2, 3, 4), 999_999, True)])
    with pytest.raises(IntegrityError):
        _record(job_id, ghost, signing, store)
    with db.unit_of_work() as s:
        assert pipeline.after_refusal(s, job_id, store, signing.audit_key) == "failed"
    job = _job(job_id)
    assert (job.status, job.error) == ("failed", pipeline.RECORD_FAILED)
    assert _decision(job_id) is None and _stored(store) == []
    assert [e.payload["job_id"] for e in _events("gate.failed")] == [job_id]


def test_the_task_ends_a_job_whose_record_is_refused_failed(
    submit, faces, store, matching, signing, monkeypatch
):
    job_id = submit(faces.picture(vector(ALICE)))
    ghost = Analysis([PersonSeen(0, Role.SOURCE, (1, 2, 3, 4), 999_999, True)])
    monkeypatch.setattr(pipeline, "analyse", lambda *_: ghost)
    assert _run(job_id, store, matching, signing) == "failed"
    assert _job(job_id).status == "failed" and _stored(store) == []


# ---------------------------------------------------------------------------- the revocation race
# Two real databases with real concurrency (threads, each its own connection): the in-memory
# database of the other tests has one connection, which cannot show a lock.
@pytest.fixture
def engine(request, engine, tmp_path, postgres_database):
    """The in-memory database, or (parametrized indirectly) a SQLite file or a PostgreSQL
    database as the service opens them (`db.make_engine`)."""
    kind = getattr(request, "param", "memory")
    if kind == "memory":
        yield engine
        return
    with contextlib.ExitStack() as stack:
        url = (
            f"sqlite:///{tmp_path / 'race.db'}"
            if kind == "sqlite"
            else stack.enter_context(postgres_database())
        )
        real = db.make_engine(url)
        SQLModel.metadata.create_all(real)
        stack.callback(real.dispose)
        yield real


class _Held:
    """Holds the worker's thread at one point until the test releases it."""

    def __init__(self) -> None:
        self.reached, self.release = threading.Event(), threading.Event()

    def hold(self) -> None:
        self.reached.set()
        assert self.release.wait(30), "never released"


def _in_thread(fn, *args) -> tuple[threading.Thread, list]:
    """Run fn(*args) in a thread inside this app's context (a second worker or web process);
    the list gets its result or its exception."""
    app, out = current_app._get_current_object(), []  # type: ignore[attr-defined]

    def run() -> None:
        with app.app_context():
            try:
                out.append(fn(*args))
            except BaseException as exc:  # reported by the test
                out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _revoke(subject_id: int, grant_id: str) -> None:
    with db.unit_of_work() as s:
        consent.revoke(s, AUDIT_KEY, subject_id, grant_id, consent.Evidence("test", "test"))


def _revoked_events_naming(job_id: str) -> list[str]:
    with db.unit_of_work() as s:
        rows = s.exec(select(WebhookDelivery).where(WebhookDelivery.event == "consent.revoked"))
        return [r.id for r in rows if job_id in json.loads(r.body)["data"]["job_ids"]]


@pytest.fixture
def race(submit, faces, enroll, provider_id, envelope):
    """An enrolled person with an active grant, a provider that hears `consent.revoked`, and a
    job showing that person: (subject id, grant id, job id)."""
    with db.unit_of_work() as s:
        webhooks.configure(
            s, envelope, s.get(Provider, provider_id), "http://127.0.0.1/in", allow_private=True
        )
    alice = enroll(ALICE)
    grant_id = _grant(alice)
    return alice, grant_id, submit(faces.picture(vector(ALICE)))


@pytest.mark.parametrize("engine", ["sqlite", "postgres"], indirect=True)
def test_a_revocation_while_the_embedder_works_makes_the_decision_deny(
    race, faces, store, matching, signing, monkeypatch
):
    alice, grant_id, job_id = race
    held, detect = _Held(), faces.detect
    monkeypatch.setattr(faces, "detect", lambda rgb: (held.hold(), detect(rgb))[1])
    worker, result = _in_thread(_run, job_id, store, matching, signing)
    assert held.reached.wait(30)  # the worker is matching the face (its grant still active)
    _revoke(alice, grant_id)
    held.release.set()
    worker.join(30)
    assert result == ["decided"]
    assert (_decision(job_id).decision, _outcomes(job_id)) == ("deny", ["revoked"])


@pytest.mark.parametrize("engine", ["sqlite", "postgres"], indirect=True)
def test_a_revocation_racing_the_record_is_seen_by_the_decision_or_names_the_job(
    race, store, matching, signing, monkeypatch
):
    """The revocation arrives after the decision read the grants and before it committed: it
    waits for the subject's lock (taken before the grants were read), so once the `allow` is
    committed the revocation sees it and `consent.revoked` names the job."""
    alice, grant_id, job_id = race
    held, read = _Held(), decisions.current_grants

    def read_then_hold(session, subject_ids):
        grants = read(session, subject_ids)
        held.hold()
        return grants

    monkeypatch.setattr(decisions, "current_grants", read_then_hold)
    worker, result = _in_thread(_run, job_id, store, matching, signing)
    assert held.reached.wait(30)  # grants read (still active), the decision not yet committed
    revoker, revoked = _in_thread(_revoke, alice, grant_id)
    revoker.join(1.0)  # without the lock it commits now, under the decision's feet
    held.release.set()
    worker.join(30)
    revoker.join(30)
    assert result == ["decided"] and revoked == [None]
    decision = _decision(job_id).decision
    assert decision == "deny" or _revoked_events_naming(job_id), decision


# ---------------------------------------------------------------------------- assurance minimums
def _assure(subject_id: int, level: Assurance | None) -> None:
    with db.unit_of_work() as s:
        subject = s.get(Subject, subject_id)
        subject.assurance = level.value if level else None


def _require(provider_id: str, minimums: dict[Operation, Assurance | None]) -> None:
    with db.unit_of_work() as s:
        set_assurance_minimums(s, AUDIT_KEY, provider_id, minimums, actor="test")


def _grant_all(subject_id: int) -> str:
    """One grant per modality, covering all its edit types, both roles, every provider."""
    with db.unit_of_work() as s:
        for modality in Modality:
            grant_id = consent.grant(
                s,
                AUDIT_KEY,
                subject_id,
                consent.GrantRequest(
                    operations=[o for o in Operation if o.modality is modality],
                    roles=[Role.SOURCE, Role.TARGET],
                    all_providers=True,
                    provider_ids=[],
                    modality=modality,
                ),
                consent.Evidence(actor="test", identity_method="test"),
            ).grant_id
    return grant_id


def _decide_people(job_id: str, people: list[PersonSeen], signing, store) -> Decision:
    assert isinstance(_claim(job_id, store), pipeline.Claim)
    assert _record(job_id, Analysis(people), signing, store) == "decided"
    decision = _decision(job_id)
    assert decision is not None
    return decision


def _seen(subject_id: int | None, role: Role = Role.SOURCE, ambiguous: bool = False) -> PersonSeen:
    return PersonSeen(0, role, (1, 2, 3, 4), subject_id, ambiguous)


@pytest.mark.parametrize("operation", list(Operation))
@pytest.mark.parametrize("role", list(Role))
def test_below_the_provider_s_minimum_a_consented_person_needs_consent(
    submit, faces, store, signing, enroll, provider_id, operation, role
):
    alice = enroll(ALICE)
    _assure(alice, Assurance.UPLOADED)
    _grant_all(alice)
    _require(provider_id, {operation: Assurance.LIVE})
    job_id = submit(faces.picture(vector(ALICE)), operation=operation)

    decision = _decide_people(job_id, [_seen(alice, role)], signing, store)

    assert (decision.decision, decision.reasons) == ("needs_consent", ["assurance_too_low"])
    assert decision.assurance_required == "live"
    with db.unit_of_work() as s:
        [finding] = s.exec(select(Finding).where(Finding.job_id == job_id)).all()
    assert (finding.outcome, finding.assurance, finding.role) == (
        "assurance_too_low",
        "uploaded",
        role.value,
    )
    claims, _ = verify_token(
        decision.token, signing.signer.keys.public_keys(), audience=provider_id
    )
    assert claims["reasons"] == ["assurance_too_low"]
    assert claims["assurance_required"] == "live"
    assert [(f["outcome"], f["assurance"]) for f in claims["findings"]] == [
        ("assurance_too_low", "uploaded")
    ]
    # The same person, the same grant, at the level the provider asks: allowed.
    _assure(alice, Assurance.LIVE)
    again = _decide_people(
        submit(faces.picture(vector(ALICE)), operation=operation),
        [_seen(alice, role)],
        signing,
        store,
    )
    assert (again.decision, again.reasons) == ("allow", ["all_consented"])
    claims, _ = verify_token(again.token, signing.signer.keys.public_keys(), audience=provider_id)
    assert claims["assurance_required"] == "live"
    assert [f["assurance"] for f in claims["findings"]] == ["live"]


def test_a_minimum_for_one_operation_leaves_the_others_alone(
    submit, faces, store, signing, enroll, provider_id
):
    alice = enroll(ALICE)
    _assure(alice, Assurance.UPLOADED)
    _grant_all(alice)
    _require(provider_id, {Operation.FACE_GENERATION: Assurance.REVIEWED})
    job_id = submit(faces.picture(vector(ALICE)), operation=Operation.FACE_SWAP)
    decision = _decide_people(job_id, [_seen(alice)], signing, store)
    assert (decision.decision, decision.assurance_required) == ("allow", None)
    claims, _ = verify_token(
        decision.token, signing.signer.keys.public_keys(), audience=provider_id
    )
    assert claims["assurance_required"] is None
    assert [f["assurance"] for f in claims["findings"]] == ["uploaded"]


def test_every_person_found_must_meet_the_minimum(
    submit, faces, store, signing, enroll, provider_id
):
    alice, bob = enroll(ALICE), enroll(BOB)
    _assure(alice, Assurance.REVIEWED)
    _assure(bob, Assurance.UPLOADED)
    _grant_all(alice)
    _grant_all(bob)
    _require(provider_id, {Operation.FACE_SWAP: Assurance.LIVE})
    job_id = submit(faces.picture(vector(ALICE)))
    people = [_seen(alice, Role.SOURCE), _seen(bob, Role.TARGET), _seen(None, ambiguous=True)]
    decision = _decide_people(job_id, people, signing, store)
    assert decision.decision == "needs_consent"
    assert decision.reasons == ["ambiguous", "assurance_too_low"]
    with db.unit_of_work() as s:
        found = [
            (f.outcome, f.subject_id, f.assurance)
            for f in s.exec(select(Finding).where(Finding.job_id == job_id).order_by(Finding.id))
        ]
    # Several subjects within the margin name nobody: no level is claimed for that person.
    assert found == [
        ("consented", alice, "reviewed"),
        ("assurance_too_low", bob, "uploaded"),
        ("ambiguous", None, None),
    ]


@pytest.mark.parametrize("situation", ["protect only", "refused", "revoked"])
def test_a_no_still_denies_below_the_minimum(
    submit, faces, store, signing, enroll, provider_id, situation
):
    alice = enroll(ALICE, protect_only=situation == "protect only")
    _assure(alice, Assurance.UPLOADED)
    if situation != "protect only":
        grant_id = _grant(alice)
        if situation == "refused":
            _set_grant(grant_id, status=GrantStatus.REFUSED.value)
        else:
            _revoke(alice, grant_id)
    _require(provider_id, {Operation.FACE_SWAP: Assurance.REVIEWED})
    decision = _decide_people(submit(faces.picture(vector(ALICE))), [_seen(alice)], signing, store)
    expected = {"protect only": "protected", "refused": "refused", "revoked": "revoked"}
    assert (decision.decision, decision.reasons) == ("deny", [expected[situation]])


def test_a_subject_without_a_level_is_below_any_minimum(
    submit, faces, store, signing, enroll, provider_id
):
    alice = enroll(ALICE)  # no level recorded
    _grant_all(alice)
    _require(provider_id, {Operation.FACE_SWAP: Assurance.UPLOADED})
    decision = _decide_people(submit(faces.picture(vector(ALICE))), [_seen(alice)], signing, store)
    assert decision.reasons == ["assurance_too_low"]


def test_a_redecision_applies_the_minimum_as_it_is_then(
    submit, faces, store, signing, enroll, provider_id
):
    # A face nobody could name (a consent request will name it): the minimum is read again
    # when the job is decided again, with the level of the person who answered.
    alice = enroll(ALICE)
    _assure(alice, Assurance.UPLOADED)
    _grant_all(alice)
    job_id = submit(faces.picture(vector(ALICE)))
    first = _decide_people(job_id, [_seen(None)], signing, store)
    assert first.reasons == ["unenrolled"]
    _require(provider_id, {Operation.FACE_SWAP: Assurance.LIVE})
    with db.unit_of_work() as s:
        [finding] = s.exec(select(Finding).where(Finding.job_id == job_id)).all()
        second = decisions.redecide(
            s,
            job_id,
            {finding.id: alice},
            AUDIT_KEY,
            signing.signer,
            signing.pseudonyms,
            "consent request test",
        )
        assert second is not None
        assert (second.decision, second.reasons, second.assurance_required) == (
            "needs_consent",
            ["assurance_too_low"],
            "live",
        )
    # Each revision that does not allow the edit because of a named person tells them.
    assert [(n.message_key, n.params["revision"]) for n in _told(alice)] == [
        ("attempt.assurance_too_low", "2")
    ]


def test_shards_that_do_not_answer_send_the_job_again_then_fail_it_never_decide_it(
    submit, faces, store, matching, signing, enroll
):
    """GALLERY_SHARDS > 1: a search the shards do not all answer leaves the job as it was for
    the next attempt (the task's retry: the same message id, so the same lease); the last
    attempt ends it failed with the reason, its media destroyed, no decision made."""

    def silent(*_args):
        raise ShardsUnavailable("shard 1 of 2 did not answer")

    sharded = replace(matching, gallery=ShardedIndex(silent))
    _grant(enroll(ALICE))
    job_id = submit(faces.picture(vector(ALICE)))
    for attempt in range(1, MAX_ATTEMPTS):
        with pytest.raises(ShardsUnavailable):
            _run(job_id, store, sharded, signing)
        job = _job(job_id)
        assert (job.status, job.attempts, job.error) == ("processing", attempt, None)
        assert _decision(job_id) is None and len(_stored(store)) == 1
    assert _run(job_id, store, sharded, signing) == "failed"
    job = _job(job_id)
    assert (job.status, job.attempts) == ("failed", MAX_ATTEMPTS)
    assert job.error == pipeline.SHARDS_UNAVAILABLE
    assert _decision(job_id) is None and _stored(store) == []
    # The shards back: a job decides as before.
    again = submit(faces.picture(vector(ALICE)))
    assert _run(again, store, matching, signing) == "decided"
