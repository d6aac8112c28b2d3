"""The gate's worker path, in three named steps:

1. `claim` the job: a short transaction under the job's lock that counts the attempt *before*
   any decoding, marks the job processing and leases it to this delivery; a job that has ended,
   whose provider is suspended or that used up its attempts goes no further, and neither does a
   second delivery of a job another delivery holds the lease of (a duplicate message, not a
   retry: it would count an attempt the media never cost).
2. `analyse` the media: pure, no database, no store: bytes and a matcher (face or voice matching
   with its gallery snapshot) in, the people found and the problems of each item out.
3. `record` the decision: a short transaction under the job's lock that re-reads the grants (so
   a revocation committed during the analysis is honoured), signs, writes the decision and
   registers the media's destruction for after the commit.

`consent_service.gate.tasks.process_job` runs them in that order, each transaction its own unit
of work. Safe to run any number of times, concurrently: a job is decided once (UNIQUE decision).
Imports the media decoders (PyAV): workers only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np
from sqlmodel import Session, select

from consent_service import db
from consent_service.audit import service as audit
from consent_service.biometrics.images import decode_image
from consent_service.biometrics.matching import Match, Searchable
from consent_service.biometrics.service import FaceMatching
from consent_service.biometrics.tracks import FaceTrack, identify_tracks, track_faces
from consent_service.biometrics.voice_analysis import speakers_in
from consent_service.biometrics.voice_service import VoiceMatching
from consent_service.crypto import KeySource
from consent_service.errors import MediaRejected
from consent_service.gate.decisions import Analysis, PersonSeen, Signing, media_of, record_decision
from consent_service.gate.models import Decision, GateJob, MediaItem
from consent_service.media.sniff import MediaKind, sniff
from consent_service.media.video import sample_frames
from consent_service.providers.models import Provider
from consent_service.storage import MediaStore
from consent_service.timeutil import as_utc, utcnow
from consent_service.vocabulary import JobStatus, Modality, Operation, ProviderStatus, Role

MISSING = "missing"  # what a task for a job that does not exist reports
PROVIDER_SUSPENDED = (
    "The provider was suspended before this job was decided: no decision was made and the "
    "media was destroyed."
)
RECORD_FAILED = (
    "The decision could not be recorded (the database refused it): no decision was made and "
    "the media was destroyed."
)
SHARDS_UNAVAILABLE = (
    "The gallery's shards did not all answer in time on any attempt: no decision was made and "
    "the media was destroyed."
)
_ENDED = (JobStatus.DECIDED, JobStatus.FAILED)


# ---------------------------------------------------------------------------- 1. claim
@dataclass(frozen=True)
class Claim:
    """A job this delivery analyses: its operation and its media (position, role, storage key;
    no key once destroyed)."""

    job_id: str
    operation: Operation
    attempts: int
    media: list[tuple[int, Role, str | None]]


@dataclass(frozen=True)
class Ended:
    """This delivery goes no further: the job was decided or failed (now or before), is
    missing, or is `processing` under another delivery's lease."""

    status: str


@dataclass(frozen=True)
class Delivery:
    """Who claims: the task message's id (the broker redelivers a message whose worker died
    under the same id, so a retry is told from a duplicate) and how long the claim holds (the
    task's time limit: no delivery runs longer)."""

    message_id: str | None
    lease: timedelta


def claim(
    session: Session,
    job_id: str,
    delivery: Delivery,
    max_attempts: int,
    audit_key: KeySource,
    store: MediaStore,
) -> Claim | Ended:
    """Step one. The attempt is counted and committed before any decoding, so media that crash
    the worker cannot loop. A job queued before its provider was suspended, or whose media
    failed `max_attempts` times, ends without a decision and its media are destroyed. A job
    another message holds an unexpired lease on is left to it: if that delivery dies, its own
    message comes back (and counts the attempt) or the stale-work sweep sends the job again
    once the lease has run out."""
    job = session.exec(select(GateJob).where(GateJob.id == job_id).with_for_update()).first()
    if job is None:
        return Ended(MISSING)
    if job.status in _ENDED:
        return Ended(job.status)
    now = utcnow()
    if _leased_to_another(job, delivery, now):
        return Ended(JobStatus.PROCESSING)
    job.attempts += 1
    job.status = JobStatus.PROCESSING.value
    job.updated_at = now
    job.claimed_by, job.claimed_until = delivery.message_id, now + delivery.lease
    if provider_suspended(session, job):  # queued before an operator suspended the provider
        return Ended(fail(session, job_id, store, audit_key, PROVIDER_SUSPENDED))
    if job.attempts > max_attempts:
        reason = f"The media could not be processed after {max_attempts} attempts."
        return Ended(fail(session, job_id, store, audit_key, reason))
    return Claim(
        job.id,
        Operation(job.operation),
        job.attempts,
        [(i.position, Role(i.role), i.storage_key) for i in media_of(session, job_id)],
    )


def _leased_to_another(job: GateJob, delivery: Delivery, now: datetime) -> bool:
    return (
        job.status == JobStatus.PROCESSING
        and job.claimed_by is not None
        and job.claimed_by != delivery.message_id
        and job.claimed_until is not None
        and as_utc(job.claimed_until) > now
    )


def load(store: MediaStore, claimed: Claim) -> list[tuple[int, Role, bytes | None]]:
    """The claimed job's media bytes from the store (None for an item no longer stored)."""

    def get(key: str | None) -> bytes | None:
        if key is None:
            return None
        try:
            return store.get(key)
        except KeyError:
            return None

    return [(position, role, get(key)) for position, role, key in claimed.media]


# ---------------------------------------------------------------------------- 2. analyse
# (where the person is, whom they match, what they look or sound like)
PersonFound = tuple[tuple[int, ...], Match, np.ndarray]


class Matcher(Protocol):
    """Finds every distinct person in one media item and whom each matches in a gallery
    snapshot; raises MediaRejected for media it cannot use."""

    @property
    def modality(self) -> Modality: ...

    def people_in(self, data: bytes) -> list[PersonFound]: ...


def faces_in(data: bytes, matching: FaceMatching) -> list[FaceTrack]:
    """Every distinct person in one media item: each face of an image, each person of a video
    (their faces across the sampled frames grouped into one track)."""
    kind = sniff(data)
    if kind is MediaKind.VIDEO:
        return track_faces(
            sample_frames(data, matching.video),
            matching.embedder,
            matching.same_person_tolerance,
            matching.track_votes,
        )
    if kind is MediaKind.AUDIO:
        raise MediaRejected(
            "The file is an audio file; a face operation needs an image or a video file."
        )
    if kind is MediaKind.PLAYLIST:
        raise MediaRejected(
            "The file is a playlist; a face operation needs an image or a video file."
        )
    return [
        FaceTrack(face.box, [face.embedding], 1)
        for face in matching.embedder.detect(decode_image(data, matching.max_pixels))
    ]


@dataclass(frozen=True)
class FaceMatcher:
    matching: FaceMatching
    gallery: Searchable
    modality: Modality = Modality.FACE

    def people_in(self, data: bytes) -> list[PersonFound]:
        m = self.matching
        tracks = faces_in(data, m)
        # Every face of the item searched in one matrix product over the gallery.
        found = identify_tracks(
            self.gallery, [t.embeddings for t in tracks], m.tolerance, m.margin, m.rule
        )
        return [(t.box, match, t.embeddings[0]) for t, match in zip(tracks, found, strict=True)]


@dataclass(frozen=True)
class VoiceMatcher:
    matching: VoiceMatching
    gallery: Searchable
    modality: Modality = Modality.VOICE

    def people_in(self, data: bytes) -> list[PersonFound]:
        m = self.matching
        speakers = speakers_in(data, m)
        found = self.gallery.identify_many([sp.embedding for sp in speakers], m.tolerance, m.margin)
        return [
            ((round(sp.first_heard * 1000), round(sp.seconds * 1000)), match, sp.embedding)
            for sp, match in zip(speakers, found, strict=True)
        ]


def matcher(
    session: Session,
    operation: Operation,
    faces: FaceMatching,
    voices: VoiceMatching | None = None,
) -> Matcher:
    """The matcher for the operation's modality, with a snapshot of that gallery."""
    if operation.modality is Modality.VOICE:
        if voices is None:
            raise RuntimeError("a voice operation needs the worker's voice matching")
        return VoiceMatcher(voices, voices.gallery.current(session, Modality.VOICE))
    return FaceMatcher(faces, faces.gallery.current(session, Modality.FACE))


_NOBODY = {
    Modality.FACE: ("no_face_found", "No face was found in this media."),
    Modality.VOICE: ("no_voice_found", "No speech was heard in this media."),
}
_GONE = ("rejected_input", "The media is no longer stored.")


def analyse(
    media: Sequence[tuple[int, Role, bytes | None]], operation: Operation, matcher: Matcher
) -> Analysis:
    """Step two, pure: find and identify every person in the job's media; note the items that
    cannot be used (no longer stored, undecodable, nobody in them)."""
    if matcher.modality is not operation.modality:
        raise ValueError(f"a {matcher.modality} matcher cannot analyse {operation}")
    result = Analysis()
    for position, role, data in media:
        if data is None:
            result.problems[position] = _GONE
            continue
        try:
            people = matcher.people_in(data)
        except MediaRejected as exc:
            result.problems[position] = ("rejected_input", str(exc))
            continue
        if not people:
            result.problems[position] = _NOBODY[operation.modality]
        for box, m, embedding in people:
            result.people.append(
                PersonSeen(position, role, box, m.subject_id, m.ambiguous, embedding)
            )
    return result


# ---------------------------------------------------------------------------- 3. record
def record(
    session: Session, job_id: str, analysis: Analysis, signing: Signing, store: MediaStore
) -> str:
    """Step three, under the job's lock: the decision (or, if the provider was suspended while
    the media were matched, the failure), then the media's destruction once committed. A job
    that has ended already is left as it is. A concurrent delivery that recorded the decision
    first makes this one fail with IntegrityError (its unit of work rolls back; then
    `after_refusal` tells that case from the others)."""
    job = session.exec(select(GateJob).where(GateJob.id == job_id).with_for_update()).one()
    if job.status in _ENDED:
        status: str = job.status
    elif provider_suspended(session, job):  # suspended while the media were being matched
        status = mark_failed(session, job, signing.audit_key, PROVIDER_SUSPENDED)
    else:
        status = record_decision(session, job, analysis, signing)
    discard_media(session, job_id, store, signing.audit_key)
    return status


def after_refusal(session: Session, job_id: str, store: MediaStore, audit_key: KeySource) -> str:
    """After `record` was refused by an integrity constraint and rolled back, in a new unit of
    work: if a decision for the job exists, a concurrent delivery recorded it first (the
    decision's primary key is the job id) and this delivery leaves it alone. Any other refusal
    (a foreign key, a check) would refuse every retry too: the job ends `failed` and its media
    are destroyed, rather than staying `processing` with its media kept."""
    if session.get(Decision, job_id) is not None:
        return JobStatus.DECIDED
    return fail(session, job_id, store, audit_key, RECORD_FAILED)


# ---------------------------------------------------------------------------- shared
def provider_suspended(session: Session, job: GateJob) -> bool:
    provider = session.get(Provider, job.provider_id)
    return provider is None or provider.status == ProviderStatus.SUSPENDED


def fail(
    session: Session, job_id: str, store: MediaStore, audit_key: KeySource, reason: str
) -> str:
    """End the job without a decision (unless it has ended already) and destroy its media."""
    job = session.exec(select(GateJob).where(GateJob.id == job_id).with_for_update()).one()
    if job.status in _ENDED:
        return job.status
    status = mark_failed(session, job, audit_key, reason)
    discard_media(session, job_id, store, audit_key)
    return status


def mark_failed(session: Session, job: GateJob, audit_key: KeySource, reason: str) -> str:
    """End the job without a decision, in the caller's transaction (it holds the job's lock)."""
    job.status, job.error, job.updated_at = JobStatus.FAILED.value, reason, utcnow()
    session.add(job)
    audit.append(
        session,
        audit_key,
        "gate.failed",
        f"provider:{job.provider_id}",
        {"job_id": job.id, "reason": reason},
    )
    return JobStatus.FAILED


def discard_media(session: Session, job_id: str, store: MediaStore, audit_key: KeySource) -> None:
    """Record the destruction of the job's stored media (the SHA-256, never the bytes); the
    files are deleted once the transaction has committed, never before (a rollback keeps them,
    and their rows still point at them)."""
    items: list[MediaItem] = [
        i
        for i in session.exec(select(MediaItem).where(MediaItem.job_id == job_id))
        if i.storage_key is not None
    ]
    if not items:
        return
    keys = [i.storage_key for i in items if i.storage_key is not None]
    for item in items:
        item.storage_key = None
        session.add(item)
    audit.append(
        session,
        audit_key,
        "media.destroyed",
        "system",
        {"job_id": job_id, "sha256": [i.sha256 for i in items]},
    )
    db.after_commit(session, lambda: _delete(store, keys))


def _delete(store: MediaStore, keys: list[str]) -> None:
    for key in keys:
        store.delete(key)
