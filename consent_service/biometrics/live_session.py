"""The live consent session: the server draws a script (head moves, a one-time code to read
aloud, for a grant a statement), the page shows it on a timer while the browser records one
continuous clip, and the worker checks the clip (`live_recording.analyse_recording`, passed in
as the analyser) in three steps like every worker here: `claim`, `analyse` (pure), `record`.

Two purposes (vocabulary.LivePurpose):
- `enroll`: face (and voice, where this server has it) templates are made from the recording's
  embeddings through the enrollment path (`enrollment.settle`: a face another account holds
  opens a dispute; a recording with no voice in it, a failed voice enrollment), the subject's
  assurance becomes `live`, and the recording is kept sealed (AES-256-GCM under a key of its
  own) until an operator reviews it or the review window ends, then destroyed, the destruction
  audited. A failed session's recording is destroyed at once.
- `step_up`: a short script (one move and a code) whose face, or voice for a voice action,
  must match the account's own enrolled templates; then the waiting action is carried out
  (`accounts.step_up.carry_out`). Its recording is destroyed as soon as it is checked: the
  evidence kept is the session id, the scores and the method.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import delete
from sqlmodel import Session, col, select

from consent_service import db
from consent_service.accounts import step_up as step_ups
from consent_service.accounts.assurance import set_level
from consent_service.accounts.models import Subject
from consent_service.accounts.service import require_verified_subject
from consent_service.audit import service as audit
from consent_service.biometrics import enrollment as enrollments
from consent_service.biometrics import live_recording
from consent_service.biometrics.live_models import LiveSession
from consent_service.biometrics.models import BiometricTemplate, Enrollment
from consent_service.biometrics.service import EnrollmentKind, open_template
from consent_service.crypto import Envelope, KeySource
from consent_service.errors import (
    N_,
    ChallengeRefused,
    DomainError,
    EnrollmentRejected,
    Msgid,
    NotFound,
    RecordingTooLarge,
)
from consent_service.notices.service import notify
from consent_service.storage import MediaStore
from consent_service.timeutil import as_utc, utcnow
from consent_service.vocabulary import (
    Assurance,
    EnrollmentStatus,
    LivePurpose,
    LiveSessionStatus,
    Modality,
    ReviewStatus,
)

TASK = "biometrics.live_session"
SYSTEM = "system:live_session"
# What a refusal tells the person to do.
AGAIN = N_("Reload the page to start again.")
NO_VOICE = N_(
    "No voice template could be made from this recording: it needs at least a second of speech "
    "without a pause. Start a new live session and read the code aloud in one go."
)
# A recording clip and the script it answers -> what the checks found (live_recording).
Analyser = Callable[[bytes, live_recording.Script], live_recording.RecordingReport]

_rng = random.SystemRandom()


def script_rng(seed: int | None) -> random.Random:
    """The randomness a script is drawn with: the system's, or (tests only: the setting is
    refused in production) a fixed seed, so a fake camera can follow the script it draws."""
    # S311/B311: deliberately predictable, and only under a setting production refuses.
    return random.Random(seed) if seed is not None else _rng  # noqa: S311  # nosec B311


def script_of(row: LiveSession) -> live_recording.Script:
    return live_recording.Script(
        moves=tuple(row.moves), code=row.code, language=row.language, statement=row.statement
    )


# ------------------------------------------------------------------------------- the web's half
def issue(
    session: Session,
    subject_id: int,
    purpose: LivePurpose,
    language: str,
    ttl_seconds: int,
    *,
    rng: random.Random | None = None,
    modality: Modality = Modality.FACE,
    step_up_id: str | None = None,
    statement: str | None = None,
) -> LiveSession:
    """A new session for the person, its script drawn here; any earlier one of theirs with the
    same purpose that never got a recording is void. The account must be verified."""
    require_verified_subject(session, subject_id)
    session.execute(
        delete(LiveSession).where(
            col(LiveSession.subject_id) == subject_id,
            col(LiveSession.purpose) == purpose.value,
            col(LiveSession.status) == LiveSessionStatus.ISSUED.value,
        )
    )
    rng = rng or _rng
    script = (
        live_recording.short_script(language, rng=rng, statement=statement)
        if purpose is LivePurpose.STEP_UP
        else live_recording.new_script(language, statement=statement, rng=rng)
    )
    now = utcnow()
    row = LiveSession(
        subject_id=subject_id,
        purpose=purpose.value,
        modality=modality.value,
        step_up_id=step_up_id,
        moves=list(script.moves),
        code=script.code,
        language=script.language,
        statement=script.statement,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    session.add(row)
    session.flush()
    return row


def submit(
    session: Session,
    recordings: MediaStore,
    subject_id: int,
    session_id: str,
    recording: bytes,
    content_type: str,
    max_bytes: int,
) -> LiveSession:
    """Use up the person's session with its recording: sealed in the recordings store, the
    worker's task registered (sent once the unit of work commits)."""
    row = session.exec(
        select(LiveSession).where(LiveSession.id == session_id).with_for_update()
    ).first()
    if row is None or row.subject_id != subject_id:
        raise ChallengeRefused("unknown", "This session is not known. %(again)s", again=AGAIN)
    if row.status != LiveSessionStatus.ISSUED.value:
        raise ChallengeRefused("used", "This session was already used. %(again)s", again=AGAIN)
    if as_utc(row.expires_at) <= utcnow():
        raise ChallengeRefused("expired", "This session expired. %(again)s", again=AGAIN)
    if not recording:
        raise EnrollmentRejected("No recording arrived. %(again)s", again=AGAIN)
    if len(recording) > max_bytes:
        raise RecordingTooLarge(
            "The recording is too large (%(size).1f MB; at most %(limit).1f MB).",
            size=len(recording) / 1e6,
            limit=max_bytes / 1e6,
        )
    now = utcnow()
    row.recording_key = recordings.put(recording)
    row.recording_type = content_type[:100]
    row.recording_bytes = len(recording)
    row.recording_sha256 = hashlib.sha256(recording).hexdigest()
    row.status = LiveSessionStatus.PENDING.value
    row.used_at = row.published_at = now
    session.add(row)
    session.flush()
    db.publish(session, TASK, row.id)
    return row


def own_session(session: Session, subject_ids: set[int], session_id: str) -> LiveSession:
    row = session.get(LiveSession, session_id) if len(session_id) <= 32 else None
    if row is None or row.subject_id not in subject_ids:
        raise NotFound("No such session.")
    return row


# ---------------------------------------------------------------------------- the worker's half
@dataclass(frozen=True)
class Claimed:
    session_id: str
    subject_id: int
    purpose: LivePurpose
    modality: Modality
    script: live_recording.Script
    recording_key: str | None
    attempts: int
    step_up_id: str | None


@dataclass(frozen=True)
class Ended:
    status: str


@dataclass
class Checked:
    """What the analyser found in the recording, or why it could not run."""

    report: live_recording.RecordingReport | None = None
    error: DomainError | None = None


@dataclass(frozen=True)
class Context:
    """What recording an outcome needs: keys, stores, the enrollment kinds (voice: None where
    this server has no voice model), the step-up's match distances, the review window."""

    envelope: Envelope
    audit_key: KeySource
    recordings: MediaStore
    face: EnrollmentKind
    voice: EnrollmentKind | None
    face_tolerance: float
    voice_tolerance: float
    review_seconds: int
    extra: dict[str, Any] = field(default_factory=dict)


def claim(session: Session, session_id: str) -> Claimed | Ended:
    """Step one: count the attempt (before any decoding, so a crashing clip cannot loop)."""
    row = session.exec(
        select(LiveSession).where(LiveSession.id == session_id).with_for_update()
    ).first()
    if row is None or row.status != LiveSessionStatus.PENDING.value:
        return Ended(row.status if row else "missing")
    row.attempts += 1
    row.claimed_at = utcnow()
    session.add(row)
    return Claimed(
        row.id,
        row.subject_id,
        LivePurpose(row.purpose),
        Modality(row.modality),
        script_of(row),
        row.recording_key,
        row.attempts,
        row.step_up_id,
    )


def load(recordings: MediaStore, key: str | None) -> bytes | None:
    if key is None:
        return None
    try:
        return recordings.get(key)
    except KeyError:
        return None


def analyse(
    recording: bytes | None,
    claimed: Claimed,
    analyser: Analyser,
    max_attempts: int,
) -> Checked:
    """Step two, pure: the analyser's report on the clip, or why there is none."""
    if claimed.attempts > max_attempts:
        return Checked(
            error=EnrollmentRejected(
                "The recording could not be processed after %(num)d attempts.", num=max_attempts
            )
        )
    if recording is None:
        return Checked(
            error=EnrollmentRejected("The recording is no longer available. %(again)s", again=AGAIN)
        )
    try:
        return Checked(report=analyser(recording, claimed.script))
    except DomainError as exc:  # undecodable, too long: said to the person
        return Checked(error=exc)


def record(session: Session, claimed: Claimed, checked: Checked, ctx: Context) -> str:
    """Step three, under the session's lock: the outcome of its purpose, audited."""
    row = session.exec(
        select(LiveSession).where(LiveSession.id == claimed.session_id).with_for_update()
    ).one()
    if row.status != LiveSessionStatus.PENDING.value:
        return row.status
    report = checked.report
    if report is not None:
        row.failures = list(report.failures)
        row.scores = {k: round(float(v), 4) for k, v in report.scores.items()}
        row.heard = report.heard[:400]
    error = checked.error
    if error is None and report is not None and not report.passed:
        error = failed_checks(report.failures)
    row.finished_at = utcnow()
    if error is not None or report is None:
        _failed(session, row, error or EnrollmentRejected(AGAIN), ctx)
    elif claimed.purpose is LivePurpose.STEP_UP:
        _step_up(session, row, report, ctx)
    else:
        _enrolled(session, row, report, ctx)
    session.add(row)
    session.flush()
    return row.status


def failed_checks(failures: tuple[str, ...] | list[str]) -> EnrollmentRejected:
    """The person-facing reason: the first failed check's message (live_recording's)."""
    first = failures[0] if failures else ""
    message = live_recording.FAILURE_MESSAGES.get(first)
    if message is None:
        return EnrollmentRejected(
            "The recording did not pass the live checks. %(again)s", again=AGAIN
        )
    return EnrollmentRejected(
        "The recording did not pass the live checks: %(reason)s", reason=Msgid(message)
    )


def _audit(session: Session, ctx: Context, event: str, row: LiveSession, **extra: Any) -> None:
    audit.append(
        session,
        ctx.audit_key,
        event,
        SYSTEM,
        {"live_session_id": row.id, "purpose": row.purpose, **extra},
        subject_id=row.subject_id,
    )


def _failed(session: Session, row: LiveSession, error: DomainError, ctx: Context) -> None:
    row.status = LiveSessionStatus.FAILED.value
    row.error, row.error_params = str(error), error.to_json()
    _audit(session, ctx, "live_session.failed", row, failures=row.failures, scores=row.scores)
    if row.step_up_id:
        step_ups.fail(session, row.step_up_id, error)
    destroy_recording(session, ctx.audit_key, ctx.recordings, row, "failed", SYSTEM)


def _voice_of(report: live_recording.RecordingReport) -> enrollments.Extracted:
    """The voice part of an enrollment where this server has voices. A recording can pass every
    check with no voice in it: the voice is only made from a second or more of unbroken speech
    (`voices.find_speakers`), and a code read one digit at a time, with pauses, has none. The
    page promised a voice template, so its absence is a failed voice enrollment with the reason
    (on /enroll and in the audit), not a voice left out without a word."""
    if report.voice_embedding is None:
        return enrollments.Extracted(error=EnrollmentRejected(NO_VOICE))
    return enrollments.Extracted(vectors=[report.voice_embedding])


def _enrolled(
    session: Session, row: LiveSession, report: live_recording.RecordingReport, ctx: Context
) -> None:
    """Templates from the recording's embeddings through the enrollment path; `live`
    assurance when the face joined the gallery; the recording kept for review."""
    made: dict[str, str] = {}
    parts = [(ctx.face, enrollments.Extracted(vectors=list(report.face_embeddings)))]
    if ctx.voice is not None:
        parts.append((ctx.voice, _voice_of(report)))
    for kind, extracted in parts:
        enrollment = Enrollment(
            subject_id=row.subject_id, modality=kind.modality.value, media_keys=[]
        )
        session.add(enrollment)
        session.flush()
        status = enrollments.settle(
            session, enrollment, extracted, kind, ctx.envelope, ctx.audit_key
        )
        row.enrollment_ids = [*row.enrollment_ids, enrollment.id]
        made[kind.modality.value] = status
    row.status = LiveSessionStatus.PASSED.value
    _audit(session, ctx, "live_session.passed", row, scores=row.scores, enrollments=made)
    if made.get(Modality.FACE.value) == EnrollmentStatus.COMPLETED.value:
        subject = session.get(Subject, row.subject_id)
        assert subject is not None  # foreign key
        # New templates from an unreviewed recording: `live`, even for a subject reviewed
        # before (the operator has not seen this one).
        set_level(
            session,
            ctx.audit_key,
            subject,
            Assurance.LIVE,
            actor=SYSTEM,
            reason="live_enrollment",
            evidence={"live_session_id": row.id, "scores": row.scores},
        )
        row.review_status = ReviewStatus.AWAITING.value
        row.keep_until = utcnow() + timedelta(seconds=ctx.review_seconds)
    else:  # nothing joined the gallery (a dispute, a failure): nothing to review
        destroy_recording(session, ctx.audit_key, ctx.recordings, row, "nothing_enrolled", SYSTEM)


def match_distance(
    session: Session,
    envelope: Envelope,
    subject_id: int,
    modality: Modality,
    vectors: list[np.ndarray],
) -> float | None:
    """The smallest distance between the recording's vectors and the subject's enrolled
    templates of the modality; None when the subject has none."""
    templates = session.exec(
        select(BiometricTemplate).where(
            BiometricTemplate.subject_id == subject_id,
            BiometricTemplate.modality == modality.value,
        )
    ).all()
    enrolled = [open_template(envelope, t) for t in templates if len(t.ciphertext)]
    if not enrolled or not vectors:
        return None
    # Each of the recording's vectors to its nearest enrolled template, and the median of
    # those: one lucky frame cannot carry a check (as live_recording's own reference match).
    nearest = [min(float(np.linalg.norm(np.asarray(v) - e)) for e in enrolled) for v in vectors]
    return float(np.median(nearest))


def _step_up(
    session: Session, row: LiveSession, report: live_recording.RecordingReport, ctx: Context
) -> None:
    modality = Modality(row.modality)
    if modality is Modality.VOICE:
        vectors = [report.voice_embedding] if report.voice_embedding is not None else []
        tolerance = ctx.voice_tolerance
    else:
        vectors, tolerance = list(report.face_embeddings), ctx.face_tolerance
    distance = match_distance(session, ctx.envelope, row.subject_id, modality, vectors)
    if distance is not None:
        row.scores = {**row.scores, "match_distance": round(distance, 4)}
    if distance is None or distance > tolerance:
        mismatch = f"{modality.value}_mismatch"  # live_recording's failure codes
        row.failures = [*row.failures, mismatch]
        what = Msgid(modality.value)
        if distance is None:
            error = EnrollmentRejected(
                "Enroll your %(modality)s with a live session first: this check compares you "
                "with it.",
                modality=what,
            )
        else:
            error = EnrollmentRejected(
                "%(reason)s The action was not carried out.",
                reason=live_recording.FAILURE_MESSAGES[mismatch],
            )
        _failed(session, row, error, ctx)
        return
    row.status = LiveSessionStatus.PASSED.value
    _audit(session, ctx, "live_session.passed", row, scores=row.scores)
    assert row.step_up_id is not None  # a step-up session names its action
    step_ups.carry_out(
        session,
        ctx.audit_key,
        row.step_up_id,
        {
            "live_session_id": row.id,
            "method": f"live-step-up/{modality.value}",
            "scores": row.scores,
            "tolerance": tolerance,
        },
    )
    destroy_recording(session, ctx.audit_key, ctx.recordings, row, "checked", SYSTEM)


# ------------------------------------------------------------------ keeping, review, destruction
def destroy_recording(
    session: Session,
    audit_key: KeySource,
    recordings: MediaStore,
    row: LiveSession,
    reason: str,
    actor: str,
) -> None:
    """Audit the recording's destruction (its SHA-256, never the bytes) and delete it once the
    transaction has committed. No recording, nothing to do."""
    key = row.recording_key
    if key is None:
        return
    audit.append(
        session,
        audit_key,
        "live_session.recording_destroyed",
        actor,
        {"live_session_id": row.id, "sha256": row.recording_sha256, "reason": reason},
        subject_id=row.subject_id,
    )
    row.recording_key = None
    row.destroyed_at = utcnow()
    session.add(row)
    db.after_commit(session, lambda: recordings.delete(key))


def sweep(
    session: Session,
    audit_key: KeySource,
    recordings: MediaStore,
    now: datetime,
    republish_after: float,
) -> tuple[int, int]:
    """Destroy the recordings whose review window ended (review `expired`), and publish again
    the sessions whose task was lost (pending, unclaimed, sent longer ago than
    `republish_after` seconds). Returns (destroyed, republished)."""
    due = session.exec(
        select(LiveSession)
        .where(
            col(LiveSession.recording_key).is_not(None),
            col(LiveSession.keep_until).is_not(None),
            col(LiveSession.keep_until) <= now,
        )
        .with_for_update()
    ).all()
    for row in due:
        if row.review_status == ReviewStatus.AWAITING.value:
            row.review_status = ReviewStatus.EXPIRED.value
        destroy_recording(
            session, audit_key, recordings, row, "review_window_ended", "system:retention"
        )
    lost = session.exec(
        select(LiveSession).where(
            LiveSession.status == LiveSessionStatus.PENDING.value,
            col(LiveSession.claimed_at).is_(None),
            col(LiveSession.published_at) <= now - timedelta(seconds=republish_after),
        )
    ).all()
    for row in lost:
        row.published_at = now
        session.add(row)
        db.publish(session, TASK, row.id)
    session.flush()
    return len(due), len(lost)


def awaiting_review(session: Session, limit: int = 200) -> list[LiveSession]:
    """Enrollment recordings waiting for an operator, oldest first."""
    return list(
        session.exec(
            select(LiveSession)
            .where(
                LiveSession.review_status == ReviewStatus.AWAITING.value,
                col(LiveSession.recording_key).is_not(None),
            )
            .order_by(col(LiveSession.finished_at))
            .limit(limit)
        )
    )


def recording_for_review(
    session: Session, audit_key: KeySource, recordings: MediaStore, session_id: str, actor: str
) -> tuple[bytes, str]:
    """The decrypted recording for an operator, each view audited."""
    row = session.get(LiveSession, session_id)
    if row is None or row.recording_key is None:
        raise NotFound("This recording is not kept (reviewed, expired or never kept).")
    data = recordings.get(row.recording_key)
    audit.append(
        session,
        audit_key,
        "live_session.recording_viewed",
        actor,
        {"live_session_id": row.id, "sha256": row.recording_sha256},
        subject_id=row.subject_id,
    )
    return data, row.recording_type or "video/webm"


def _to_review(session: Session, session_id: str) -> LiveSession:
    row = session.exec(
        select(LiveSession).where(LiveSession.id == session_id).with_for_update()
    ).first()
    if row is None or row.review_status != ReviewStatus.AWAITING.value:
        raise NotFound("This recording is not waiting for review.")
    return row


def approve(
    session: Session,
    audit_key: KeySource,
    recordings: MediaStore,
    session_id: str,
    actor: str,
    note: str = "",
    document_seen: bool = False,
) -> LiveSession:
    """The operator watched the recording and it is the account holder: `reviewed`; the
    recording is destroyed (it has served its purpose); the person is told."""
    row = _to_review(session, session_id)
    row.review_status = ReviewStatus.APPROVED.value
    row.reviewed_by, row.reviewed_at = actor, utcnow()
    row.review_note, row.document_seen = note.strip()[:2000], document_seen
    subject = session.get(Subject, row.subject_id)
    assert subject is not None  # foreign key
    set_level(
        session,
        audit_key,
        subject,
        Assurance.REVIEWED,
        actor=actor,
        reason="operator_review",
        evidence={"live_session_id": row.id, "document_seen": document_seen},
    )
    audit.append(
        session,
        audit_key,
        "live_session.review_approved",
        actor,
        {"live_session_id": row.id, "document_seen": document_seen, "note": row.review_note},
        subject_id=row.subject_id,
    )
    notify(session, row.subject_id, "review.approved", "review.approved")
    destroy_recording(session, audit_key, recordings, row, "reviewed", actor)
    return row


def reject(
    session: Session,
    audit_key: KeySource,
    recordings: MediaStore,
    session_id: str,
    actor: str,
    reason: str,
) -> LiveSession:
    """The recording does not show the account holder enrolling (someone else's face, a
    screen, a mask): the templates it made are removed (the gallery hears of it through the
    change log), the subject's assurance falls to what its remaining templates support, the
    recording is destroyed and the person is told why and what to do."""
    reason = reason.strip()[:2000]
    if not reason:
        raise EnrollmentRejected("Say why the recording is rejected; the person is told.")
    row = _to_review(session, session_id)
    row.review_status = ReviewStatus.REJECTED.value
    row.reviewed_by, row.reviewed_at, row.review_note = actor, utcnow(), reason
    removed = 0
    for template in session.exec(
        select(BiometricTemplate).where(
            col(BiometricTemplate.enrollment_id).in_(row.enrollment_ids)
        )
    ).all():
        session.delete(template)
        removed += 1
    session.flush()
    subject = session.get(Subject, row.subject_id)
    assert subject is not None  # foreign key
    set_level(
        session,
        audit_key,
        subject,
        remaining_level(session, row.subject_id),
        actor=actor,
        reason="operator_review_rejected",
        evidence={"live_session_id": row.id},
    )
    audit.append(
        session,
        audit_key,
        "live_session.review_rejected",
        actor,
        {"live_session_id": row.id, "reason": reason, "templates_removed": removed},
        subject_id=row.subject_id,
    )
    notify(session, row.subject_id, "review.rejected", "review.rejected", reason=reason)
    destroy_recording(session, audit_key, recordings, row, "reviewed", actor)
    return row


def remaining_level(session: Session, subject_id: int) -> Assurance | None:
    """The assurance the subject's remaining templates support: `reviewed` or `live` when they
    came from a live session approved or passed (and not rejected), `uploaded` for any other
    template, None when nothing is enrolled."""
    enrolled = set(
        session.exec(
            select(BiometricTemplate.enrollment_id).where(
                BiometricTemplate.subject_id == subject_id
            )
        ).all()
    )
    if not enrolled:
        return None
    best: Assurance = Assurance.UPLOADED
    for live in session.exec(
        select(LiveSession).where(
            LiveSession.subject_id == subject_id,
            LiveSession.purpose == LivePurpose.ENROLL.value,
            LiveSession.status == LiveSessionStatus.PASSED.value,
        )
    ).all():
        if live.review_status == ReviewStatus.REJECTED.value or not enrolled & set(
            live.enrollment_ids
        ):
            continue
        level = (
            Assurance.REVIEWED
            if live.review_status == ReviewStatus.APPROVED.value
            else Assurance.LIVE
        )
        best = max(best, level, key=lambda a: a.rank)
    return best
