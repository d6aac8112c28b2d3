"""The live consent session through its three steps (claim, analyse, record) as its task runs
them, with a stand-in analyser (a pure function of the clip's bytes: which report the test
registered for them): templates and `live` from a passing enrollment (the voice beside the
face where the server has voices, or a failed voice enrollment saying why when the recording
had none), the reason from a failing one, a dispute, the recording sealed and kept for review
then destroyed (audited) when the window ends, an operator's approval and rejection, and the
step-up that carries out a grant only when its face matches the account's own enrolled face.
No worker, no dlib."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from sqlmodel import select

from consent_service import db
from consent_service.accounts import step_up as step_ups
from consent_service.accounts.models import StepUp, Subject, User
from consent_service.audit.models import AuditEvent
from consent_service.biometrics import live_recording, live_session
from consent_service.biometrics.live_models import LiveSession
from consent_service.biometrics.models import BiometricTemplate, Enrollment, EnrollmentDispute
from consent_service.biometrics.service import GalleryIndex, face_enrollment, template_count
from consent_service.biometrics.tasks import live_checks, run_live_session
from consent_service.biometrics.voice_analysis import voice_enrollment
from consent_service.biometrics.voice_service import VoiceMatching
from consent_service.consent import service as consent
from consent_service.consent import step_up as grant_step_up
from consent_service.consent.models import ConsentGrant
from consent_service.crypto import StaticKeys
from consent_service.errors import ChallengeRefused, RecordingTooLarge
from consent_service.notices.models import SubjectNotice
from consent_service.settings import Settings
from consent_service.storage import LocalMediaStore
from consent_service.timeutil import utcnow
from consent_service.vocabulary import LivePurpose, Modality, Operation, Role
from tests.fakes import vector

AUDIT_KEY = StaticKeys.single(b"a" * 32)
MAX_ATTEMPTS = 3
MAX_BYTES = 1000


class StandInAnalyser:
    """The report registered for a clip's bytes; records the scripts it was asked about."""

    def __init__(self) -> None:
        self.reports: dict[bytes, live_recording.RecordingReport] = {}
        self.scripts: list[live_recording.Script] = []

    def clip(
        self,
        data: bytes,
        *faces: np.ndarray,
        failures: tuple[str, ...] = (),
        voice: np.ndarray | None = None,
    ) -> bytes:
        self.reports[data] = live_recording.RecordingReport(
            passed=not failures,
            failures=failures,
            scores={"pose_order": 0.9, "code_match": 1.0},
            heard="one two three",
            face_embeddings=list(faces),
            voice_embedding=voice,
        )
        return data

    def __call__(self, data: bytes, script: live_recording.Script):
        self.scripts.append(script)
        return self.reports[data]


@pytest.fixture(autouse=True)
def units(worker_context):
    return worker_context


@pytest.fixture
def recordings(tmp_path, envelope) -> LocalMediaStore:
    return LocalMediaStore(tmp_path / "recordings", envelope)


@pytest.fixture
def analyser() -> StandInAnalyser:
    return StandInAnalyser()


@pytest.fixture
def ctx(envelope, recordings, matching) -> live_session.Context:
    return live_session.Context(
        envelope=envelope,
        audit_key=AUDIT_KEY,
        recordings=recordings,
        face=face_enrollment(matching),
        voice=None,
        face_tolerance=0.5,
        voice_tolerance=0.65,
        review_seconds=3600,
    )


class FakeVoices:
    """Never asked to embed: the stand-in analyser's report carries the voice already."""

    model_name = "fake-voices"

    def embed(self, samples: np.ndarray) -> np.ndarray:
        raise AssertionError("the live session embeds nothing itself")


@pytest.fixture
def voice_ctx(ctx, envelope) -> live_session.Context:
    """The context of a server with the voice extra (`tasks.live_context`'s voice part)."""
    voices = VoiceMatching(
        embedder=FakeVoices(),
        gallery=GalleryIndex(envelope, FakeVoices.model_name),
        tolerance=0.65,
        margin=0.05,
        same_speaker=0.7,
        max_seconds=60,
    )
    return replace(ctx, voice=voice_enrollment(voices))


def _voice(k: int) -> np.ndarray:
    v = np.zeros(256)
    v[k] = 1.0
    return v


def _subject(email: str) -> tuple[int, int]:
    with db.unit_of_work() as s:
        user = User(email=email, password_hash="-", email_verified_at=utcnow())
        s.add(user)
        s.flush()
        subject = Subject(user_id=user.id)
        s.add(subject)
        s.flush()
        assert subject.id is not None and user.id is not None
        return user.id, subject.id


def _issue(subject_id: int, purpose=LivePurpose.ENROLL, **kw) -> LiveSession:
    with db.unit_of_work() as s:
        return live_session.issue(s, subject_id, purpose, "en", 600, **kw)


def _submit(recordings, subject_id: int, session_id: str, clip: bytes) -> None:
    with db.unit_of_work() as s:
        live_session.submit(s, recordings, subject_id, session_id, clip, "video/webm", MAX_BYTES)


def _run(session_id: str, ctx, analyser) -> str:
    return run_live_session(session_id, ctx, analyser, MAX_ATTEMPTS)


def _row(model, key):
    with db.unit_of_work() as s:
        row = s.get(model, key)
        assert row is not None
        return row


def _events() -> list[str]:
    with db.unit_of_work() as s:
        return [e.event_type for e in s.exec(select(AuditEvent).order_by(AuditEvent.seq))]


def _templates(subject_id: int) -> int:
    with db.unit_of_work() as s:
        return len(
            s.exec(
                select(BiometricTemplate).where(BiometricTemplate.subject_id == subject_id)
            ).all()
        )


def _stored(store) -> int:
    return len(list(store.root.iterdir())) if store.root.is_dir() else 0


def test_a_passing_enrollment_makes_templates_sets_live_and_keeps_the_recording_sealed(
    ctx, analyser, recordings, units
):
    _user, me = _subject("me@example.org")
    row = _issue(me)
    assert len(row.moves) >= 1 and row.code and row.status == "issued"
    clip = analyser.clip(b"clip-1", vector(1), vector(1))
    _submit(recordings, me, row.id, clip)
    assert units[-1] == (live_session.TASK, [row.id])
    # Sealed: the stored file is not the clip.
    (path,) = list(recordings.root.iterdir())
    assert clip not in path.read_bytes()
    assert _run(row.id, ctx, analyser) == "passed"
    # The analyser was asked about the very script the page showed.
    assert analyser.scripts == [live_session.script_of(row)]
    done = _row(LiveSession, row.id)
    assert (done.status, done.review_status, done.failures) == ("passed", "awaiting", [])
    assert done.scores == {"pose_order": 0.9, "code_match": 1.0}
    assert done.recording_key and _stored(recordings) == 1 and len(done.enrollment_ids) == 1
    assert _templates(me) == 2 and _row(Subject, me).assurance == "live"
    events = _events()
    assert events[-3:] == [
        "biometrics.enrolled",
        "live_session.passed",
        "subject.assurance_changed",
    ]
    # A duplicate task message finds it ended.
    assert _run(row.id, ctx, analyser) == "passed" and _row(LiveSession, row.id).attempts == 1


def _enrollments(subject_id: int) -> dict[str, Enrollment]:
    with db.unit_of_work() as s:
        rows = s.exec(select(Enrollment).where(Enrollment.subject_id == subject_id)).all()
        return {row.modality: row for row in rows}


def _dashboard_counts(subject_id: int) -> tuple[int, int]:
    """What the dashboard and /enroll show: the face and voice templates the subject has."""
    with db.unit_of_work() as s:
        return (
            template_count(s, subject_id, Modality.FACE),
            template_count(s, subject_id, Modality.VOICE),
        )


def test_a_voice_heard_is_enrolled_beside_the_face(voice_ctx, analyser, recordings):
    _user, me = _subject("me@example.org")
    row = _issue(me)
    _submit(recordings, me, row.id, analyser.clip(b"clip-v", vector(1), voice=_voice(1)))
    assert _run(row.id, voice_ctx, analyser) == "passed"
    assert _dashboard_counts(me) == (1, 1)
    made = _enrollments(me)
    assert {m: e.status for m, e in made.items()} == {"face": "completed", "voice": "completed"}
    assert len(_row(LiveSession, row.id).enrollment_ids) == 2


def test_a_recording_with_no_voice_says_the_voice_was_not_enrolled_and_why(
    voice_ctx, analyser, recordings
):
    """Issue 9: a session that passed with no voice in it (the code read digit by digit) left
    no trace of the voice, while the page had promised a voice template: the dashboard's
    "Voice: not enrolled" was the first the person heard of it."""
    _user, me = _subject("me@example.org")
    row = _issue(me)
    _submit(recordings, me, row.id, analyser.clip(b"clip-nv", vector(1), voice=None))
    assert _run(row.id, voice_ctx, analyser) == "passed"
    assert _dashboard_counts(me) == (1, 0)
    made = _enrollments(me)
    assert {m: e.status for m, e in made.items()} == {"face": "completed", "voice": "failed"}
    assert made["voice"].error == live_session.NO_VOICE
    assert made["voice"].error_params == {"message": live_session.NO_VOICE, "params": {}}
    assert "biometrics.enrollment_failed" in _events()
    # The face enrolled all the same: `live`, and the recording kept for review.
    done = _row(LiveSession, row.id)
    assert (done.review_status, _row(Subject, me).assurance) == ("awaiting", "live")


def test_a_failing_recording_says_why_and_is_destroyed(ctx, analyser, recordings):
    _user, me = _subject("me@example.org")
    row = _issue(me)
    failure = next(iter(live_recording.FAILURE_MESSAGES))
    _submit(recordings, me, row.id, analyser.clip(b"clip-2", vector(1), failures=(failure,)))
    assert _run(row.id, ctx, analyser) == "failed"
    done = _row(LiveSession, row.id)
    assert done.failures == [failure] and done.error_params
    assert str(live_recording.FAILURE_MESSAGES[failure]) in (done.error or "")
    assert done.recording_key is None and done.destroyed_at is not None
    assert _templates(me) == 0 and _row(Subject, me).assurance is None
    assert _stored(recordings) == 0
    assert _events()[-2:] == ["live_session.failed", "live_session.recording_destroyed"]


def test_a_session_is_used_once_by_its_own_subject_within_its_size_limit(analyser, recordings):
    _user, me = _subject("me@example.org")
    _other_user, other = _subject("other@example.org")
    row = _issue(me)
    with pytest.raises(ChallengeRefused, match="not known"):
        _submit(recordings, other, row.id, b"x")
    with pytest.raises(RecordingTooLarge):
        _submit(recordings, me, row.id, b"x" * (MAX_BYTES + 1))
    _submit(recordings, me, row.id, b"x")
    with pytest.raises(ChallengeRefused, match="already used"):
        _submit(recordings, me, row.id, b"x")
    late = _issue(me)
    with db.unit_of_work() as s:
        stored = s.get(LiveSession, late.id)
        assert stored is not None
        stored.expires_at = utcnow() - timedelta(seconds=1)
        s.add(stored)
    with pytest.raises(ChallengeRefused, match="expired"):
        _submit(recordings, me, late.id, b"x")


def test_a_new_session_voids_the_unused_one(analyser):
    _user, me = _subject("me@example.org")
    first = _issue(me)
    second = _issue(me)
    with db.unit_of_work() as s:
        assert s.get(LiveSession, first.id) is None and s.get(LiveSession, second.id)


def test_a_fixed_seed_draws_the_same_script_every_time():
    a = live_recording.new_script("en", rng=live_session.script_rng(7))
    b = live_recording.new_script("en", rng=live_session.script_rng(7))
    assert a == b


def test_a_face_another_account_holds_opens_a_dispute_and_nothing_is_kept(
    ctx, analyser, recordings, envelope
):
    _u1, holder = _subject("holder@example.org")
    first = _issue(holder)
    _submit(recordings, holder, first.id, analyser.clip(b"clip-h", vector(3)))
    assert _run(first.id, ctx, analyser) == "passed"
    _u2, claimant = _subject("claimant@example.org")
    row = _issue(claimant)
    _submit(recordings, claimant, row.id, analyser.clip(b"clip-c", vector(3)))
    assert _run(row.id, ctx, analyser) == "passed"
    done = _row(LiveSession, row.id)
    assert done.review_status is None and done.recording_key is None
    assert _templates(claimant) == 0 and _row(Subject, claimant).assurance is None
    with db.unit_of_work() as s:
        assert s.exec(select(EnrollmentDispute)).one().claimant_subject_id == claimant


def test_the_review_window_ends_with_the_recording_destroyed_and_audited(
    ctx, analyser, recordings, units
):
    _user, me = _subject("me@example.org")
    row = _issue(me)
    _submit(recordings, me, row.id, analyser.clip(b"clip-w", vector(1)))
    _run(row.id, ctx, analyser)
    with db.unit_of_work() as s:
        assert live_session.sweep(s, AUDIT_KEY, recordings, utcnow(), 60) == (0, 0)
    with db.unit_of_work() as s:
        later = utcnow() + timedelta(seconds=3601)
        assert live_session.sweep(s, AUDIT_KEY, recordings, later, 60) == (1, 0)
    done = _row(LiveSession, row.id)
    assert (done.review_status, done.recording_key) == ("expired", None)
    assert _stored(recordings) == 0 and _events()[-1] == "live_session.recording_destroyed"
    # The templates stay (the machine checks passed); the level stays `live`.
    assert _templates(me) == 1 and _row(Subject, me).assurance == "live"


def test_a_lost_task_is_sent_again_by_the_sweep(analyser, recordings, units):
    _user, me = _subject("me@example.org")
    row = _issue(me)
    _submit(recordings, me, row.id, b"clip")
    units.clear()
    with db.unit_of_work() as s:
        later = utcnow() + timedelta(seconds=61)
        assert live_session.sweep(s, AUDIT_KEY, recordings, later, 60) == (0, 1)
    assert units == [(live_session.TASK, [row.id])]


def _enrolled(ctx, analyser, recordings, email: str, face: np.ndarray) -> tuple[int, int, str]:
    user, me = _subject(email)
    row = _issue(me)
    _submit(recordings, me, row.id, analyser.clip(b"enroll-" + email.encode(), face))
    assert _run(row.id, ctx, analyser) == "passed"
    return user, me, row.id


def test_an_operator_approves_a_recording_reviewed(ctx, analyser, recordings):
    _user, me, sid = _enrolled(ctx, analyser, recordings, "me@example.org", vector(1))
    with db.unit_of_work() as s:
        assert [r.id for r in live_session.awaiting_review(s)] == [sid]
        data, kind = live_session.recording_for_review(s, AUDIT_KEY, recordings, sid, "operator:1")
    assert data == b"enroll-me@example.org" and kind == "video/webm"
    assert _events()[-1] == "live_session.recording_viewed"
    with db.unit_of_work() as s:
        live_session.approve(s, AUDIT_KEY, recordings, sid, "operator:1", "passport", True)
    done = _row(LiveSession, sid)
    assert (done.review_status, done.document_seen, done.recording_key) == ("approved", True, None)
    assert _row(Subject, me).assurance == "reviewed" and _stored(recordings) == 0
    with db.unit_of_work() as s:
        notice = s.exec(select(SubjectNotice).where(SubjectNotice.subject_id == me)).one()
        assert notice.message_key == "review.approved"
        assert live_session.awaiting_review(s) == []


def test_an_operator_rejects_a_recording_its_templates_go_and_the_person_is_told(
    ctx, analyser, recordings
):
    _user, me, sid = _enrolled(ctx, analyser, recordings, "me@example.org", vector(1))
    with db.unit_of_work() as s, pytest.raises(Exception, match="Say why"):
        live_session.reject(s, AUDIT_KEY, recordings, sid, "operator:1", " ")
    with db.unit_of_work() as s:
        live_session.reject(s, AUDIT_KEY, recordings, sid, "operator:1", "A photo on a screen.")
    assert _templates(me) == 0 and _row(Subject, me).assurance is None
    assert _row(LiveSession, sid).review_status == "rejected" and _stored(recordings) == 0
    with db.unit_of_work() as s:
        notice = s.exec(select(SubjectNotice).where(SubjectNotice.subject_id == me)).one()
    assert notice.message_key == "review.rejected" and "A photo on a screen." in notice.message
    assert "live_session.review_rejected" in _events()


def _grant_waiting(user_id: int, subject_id: int) -> str:
    req = consent.GrantRequest(
        operations=[Operation.FACE_SWAP],
        roles=[Role.SOURCE],
        all_providers=True,
        provider_ids=[],
        modality=Modality.FACE,
    )
    evidence = consent.Evidence(actor=f"user:{user_id}", identity_method="live-step-up")
    with db.unit_of_work() as s:
        return step_ups.begin(
            s,
            user_id=user_id,
            subject_id=subject_id,
            kind=grant_step_up.KIND,
            modality=Modality.FACE,
            payload=grant_step_up.payload(subject_id, req, evidence, "face swap"),
            return_to="/",
            ttl_seconds=600,
        ).id


def test_a_step_up_whose_face_matches_carries_out_the_grant_with_its_evidence(
    ctx, analyser, recordings
):
    user, me, _sid = _enrolled(ctx, analyser, recordings, "me@example.org", vector(1))
    action = _grant_waiting(user, me)
    row = _issue(me, LivePurpose.STEP_UP, step_up_id=action)
    assert len(row.moves) == 1
    _submit(recordings, me, row.id, analyser.clip(b"step-up", vector(1)))
    assert _run(row.id, ctx, analyser) == "passed"
    done = _row(StepUp, action)
    assert done.status == "done" and done.result["grant_id"]
    with db.unit_of_work() as s:
        grant = s.exec(select(ConsentGrant)).one()
    assert grant.identity_method == "live-step-up/face"
    assert grant.identity_evidence is not None
    assert grant.identity_evidence["live_session_id"] == row.id
    assert grant.identity_evidence["scores"]["match_distance"] == 0.0
    # The step-up's recording is not kept: the evidence is its id and scores.
    assert _row(LiveSession, row.id).recording_key is None


def test_a_step_up_with_another_face_fails_and_grants_nothing(ctx, analyser, recordings):
    user, me, _sid = _enrolled(ctx, analyser, recordings, "me@example.org", vector(1))
    action = _grant_waiting(user, me)
    row = _issue(me, LivePurpose.STEP_UP, step_up_id=action)
    _submit(recordings, me, row.id, analyser.clip(b"someone-else", vector(2)))
    assert _run(row.id, ctx, analyser) == "failed"
    done = _row(StepUp, action)
    assert done.status == "failed" and "is not the face enrolled" in (done.error or "")
    assert "face_mismatch" in _row(LiveSession, row.id).failures
    with db.unit_of_work() as s:
        assert s.exec(select(ConsentGrant)).all() == []


def test_a_step_up_without_an_enrolled_face_fails_with_what_to_do(ctx, analyser, recordings):
    user, me = _subject("new@example.org")
    action = _grant_waiting(user, me)
    row = _issue(me, LivePurpose.STEP_UP, step_up_id=action)
    _submit(recordings, me, row.id, analyser.clip(b"new-face", vector(4)))
    assert _run(row.id, ctx, analyser) == "failed"
    assert "Enroll your face" in (_row(StepUp, action).error or "")


def test_the_live_checks_follow_the_settings_in_force(tmp_path):
    """The worker's live checks use the same thresholds as the gate and enrollment: a recording's
    voices are grouped at VOICE_SAME_SPEAKER (it was a fixed 0.75 whatever the setting said)."""
    settings = Settings(
        consent_service_home=tmp_path,
        voice_same_speaker=0.62,
        face_tolerance=0.45,
        voice_tolerance=0.55,
        live_recording_max_seconds=40,
    )
    checks = live_checks(settings)
    assert (checks.same_speaker, checks.face_tolerance, checks.voice_tolerance) == (
        0.62,
        0.45,
        0.55,
    )
    assert checks.max_seconds == 45.0  # the page's limit and a container's last frames
    default = Settings.model_fields["voice_same_speaker"].default
    assert live_recording.LiveChecks().same_speaker == default
