"""Enrollment: photos in, encrypted templates out, photos destroyed; and the gallery workers match
against."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from cryptography.exceptions import InvalidTag
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from consent_service import db
from consent_service.accounts.service import require_verified_subject
from consent_service.biometrics.faces import FaceEmbedder
from consent_service.biometrics.gallery import (
    Gallery,
    Rule,
    Searchable,
    open_snapshot,
    read_snapshot_header,
    seal_snapshot,
    shard_of,
    shards_of,
)
from consent_service.biometrics.images import decode_image
from consent_service.biometrics.matching import mutually_consistent
from consent_service.biometrics.models import (
    BiometricTemplate,
    Enrollment,
    GalleryVersion,
    TemplateChange,
    TemplateOp,
)
from consent_service.crypto import Envelope, wrapped_key_id
from consent_service.errors import N_, DomainError, EnrollmentRejected, MediaRejected
from consent_service.media.limits import VideoLimits
from consent_service.storage import MediaStore
from consent_service.vocabulary import EnrollmentStatus, Modality

log = logging.getLogger(__name__)
_BATCH = 10_000  # templates decrypted per batch when a gallery is loaded from the database


def template_aad(subject_id: int, template_id: str) -> bytes:
    return f"template:{subject_id}:{template_id}".encode()


def seal_template(envelope: Envelope, template: BiometricTemplate, vector: np.ndarray) -> None:
    template.ciphertext, template.wrapped_key = envelope.seal(
        np.asarray(vector, dtype="<f8").tobytes(), template_aad(template.subject_id, template.id)
    )
    template.kek_id = wrapped_key_id(template.wrapped_key)


def add_templates(
    session: Session,
    envelope: Envelope,
    subject_id: int,
    modality: str,
    model: str,
    enrollment_id: str,
    vectors: Sequence[np.ndarray],
) -> int:
    """Seal and store the subject's templates of one enrollment (each insert is logged for the
    workers' galleries: `models.TemplateChange`). Returns how many were added."""
    for vector in vectors:
        template = BiometricTemplate(
            subject_id=subject_id,
            modality=modality,
            model=model,
            ciphertext=b"",
            wrapped_key=b"",
            enrollment_id=enrollment_id,
        )
        seal_template(envelope, template, vector)
        session.add(template)
    return len(vectors)


class SealedTemplate(Protocol):
    """What opening a template reads: a `BiometricTemplate`, or a row of just these columns."""

    @property
    def id(self) -> str: ...
    @property
    def subject_id(self) -> int: ...
    @property
    def ciphertext(self) -> bytes: ...
    @property
    def wrapped_key(self) -> bytes: ...


def open_template(envelope: Envelope, template: SealedTemplate) -> np.ndarray:
    raw = envelope.open(
        template.ciphertext, template.wrapped_key, template_aad(template.subject_id, template.id)
    )
    return np.frombuffer(raw, dtype="<f8")


class Galleries(Protocol):
    """A worker's galleries, one per modality: `current` gives the gallery to search now (this
    process's own `GalleryIndex`, or a `shards.ShardedIndex` whose searches go to the shards)."""

    def current(self, session: Session, modality: Modality) -> Searchable: ...


class GalleryIndex:
    """A worker's galleries of one model, one per modality, kept current from the template
    change log: the first use loads the gallery (from the host's sealed snapshot when there is
    one, else by decrypting every template), later uses apply only the changes logged since.
    One per Services container; thread-safe (searches run while another thread catches up).

    With `shard` (index, count), the galleries hold only the templates of the subjects in that
    shard (`gallery.shards_of`), decrypted, logged and snapshotted apart from the others'."""

    # A fresh snapshot after this many changes, or after any removal (erasure reaches the disk).
    SNAPSHOT_EVERY = 1000

    def __init__(
        self,
        envelope: Envelope,
        model_name: str,
        snapshot_key: bytes | None = None,
        snapshot_dir: Path | None = None,
        shard: tuple[int, int] | None = None,
    ):
        if shard is not None and not 0 <= shard[0] < shard[1]:
            raise ValueError(f"shard {shard[0]} of {shard[1]} does not exist")
        self._envelope = envelope
        self._model = model_name
        self._shard = shard if shard is not None and shard[1] > 1 else None
        self._snapshot_key = snapshot_key
        self._snapshot_dir = snapshot_dir
        self._lock = threading.Lock()
        self._galleries: dict[str, Gallery] = {}
        self._snapshot_seq: dict[str, int] = {}

    def current(self, session: Session, modality: Modality) -> Gallery:
        """The gallery of `modality` as of the log's head now (the same object every time,
        changed in place)."""
        head = _log_head(session, modality)
        with self._lock:
            gallery = self._galleries.get(modality.value)
            if gallery is None:
                gallery = self._load(session, modality, head)
                self._galleries[modality.value] = gallery
            # A head behind the gallery is a session older than another thread's: the gallery
            # is newer than what it sees, never older. (A database restored to an earlier
            # state needs its workers restarted, as it always did.)
            if gallery.seq < head:
                self._catch_up(session, modality, gallery)
            return gallery

    # ------------------------------------------------------------------ keeping up
    def _catch_up(self, session: Session, modality: Modality, gallery: Gallery) -> None:
        changes = session.exec(
            select(TemplateChange)
            .where(TemplateChange.modality == modality.value, TemplateChange.seq > gallery.seq)
            .order_by(col(TemplateChange.seq))
        ).all()
        if not changes:
            return
        adding: dict[str, int] = {}
        removed: list[tuple[str, int]] = []
        for change in changes:
            if change.model != self._model or not self._mine(change.subject_id):
                continue
            if change.op == TemplateOp.ADD:
                adding[change.template_id] = change.subject_id
            elif adding.pop(change.template_id, None) is None:
                removed.append((change.template_id, change.subject_id))
        # Only the templates added are decrypted (those deleted since are simply not found).
        wanted = list(adding)
        added = [
            (t.id, t.subject_id, open_template(self._envelope, t))
            for start in range(0, len(wanted), 500)
            for t in session.exec(
                select(BiometricTemplate).where(
                    col(BiometricTemplate.id).in_(wanted[start : start + 500])
                )
            )
        ]
        gallery.apply(changes[-1].seq, added=added, removed=removed)
        since = gallery.seq - self._snapshot_seq.get(modality.value, 0)
        if removed or since >= self.SNAPSHOT_EVERY:
            self._save(session, modality, gallery)

    # ------------------------------------------------------------------ starting up
    def _load(self, session: Session, modality: Modality, head: int) -> Gallery:
        gallery = self._open(session, modality, head)
        if gallery is None:
            gallery = self._decrypt_all(session, modality, head)
            self._save(session, modality, gallery)
        return gallery

    def _decrypt_all(self, session: Session, modality: Modality, head: int) -> Gallery:
        """Every template of the modality and model, decrypted one envelope at a time; `head`
        was read first, so changes committed meanwhile are applied again, harmlessly."""
        rows = session.execute(
            select(
                BiometricTemplate.id,
                BiometricTemplate.subject_id,
                BiometricTemplate.ciphertext,
                BiometricTemplate.wrapped_key,
            )
            .where(
                BiometricTemplate.modality == modality.value,
                BiometricTemplate.model == self._model,
            )
            .execution_options(yield_per=_BATCH)
        )
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for batch in rows.partitions():  # ciphertexts held one batch at a time
            subjects = np.fromiter((r.subject_id for r in batch), np.int64, len(batch))
            if self._shard is not None:  # only this shard's subjects are decrypted
                keep = shards_of(subjects, self._shard[1]) == self._shard[0]
                batch = [r for r, k in zip(batch, keep, strict=True) if k]
                subjects = subjects[keep]
            if not len(batch):
                continue
            parts.append(
                (
                    subjects,
                    np.array([r.id for r in batch], "S32"),
                    np.array([open_template(self._envelope, r) for r in batch], np.float32).reshape(
                        len(batch), -1
                    ),
                )
            )
        if not parts:
            return Gallery(seq=head)
        return Gallery.from_arrays(
            head,
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
        )

    def _snapshot_path(self, modality: Modality) -> Path | None:
        if self._snapshot_dir is None or self._snapshot_key is None:
            return None
        model = hashlib.sha256(self._model.encode()).hexdigest()[:16]
        shard = f"-shard{self._shard[0]}of{self._shard[1]}" if self._shard else ""
        return self._snapshot_dir / f"{modality.value}-{model}{shard}.gallery"

    def _binding(self, session: Session, modality: Modality, seq: int) -> dict | None:
        """What a snapshot at `seq` is bound to: the modality, the model and the change logged
        at `seq` (template ids are random, so no other database has it); None when no change
        is logged at `seq` (an empty log): no snapshot then."""
        change = session.get(TemplateChange, (modality.value, seq))
        if change is None:
            return None
        last = hashlib.sha256(f"{change.op}:{change.template_id}".encode()).hexdigest()
        binding: dict = {"modality": modality.value, "model": self._model, "last_change": last}
        if self._shard is not None:
            binding["shard"] = list(self._shard)
        return binding

    def _mine(self, subject_id: int) -> bool:
        return self._shard is None or shard_of(subject_id, self._shard[1]) == self._shard[0]

    def _open(self, session: Session, modality: Modality, head: int) -> Gallery | None:
        path = self._snapshot_path(modality)
        if path is None or not path.exists():
            return None
        try:
            seq = read_snapshot_header(path)["seq"]
            binding = self._binding(session, modality, seq) if seq <= head else None
            if binding is None:
                return None
            gallery = open_snapshot(self._snapshot_key or b"", path, binding)
        except (OSError, ValueError, KeyError, InvalidTag) as exc:
            log.warning("gallery snapshot %s not used (%r); loading from the database", path, exc)
            return None
        self._snapshot_seq[modality.value] = gallery.seq
        return gallery

    def _save(self, session: Session, modality: Modality, gallery: Gallery) -> None:
        path = self._snapshot_path(modality)
        binding = self._binding(session, modality, gallery.seq) if path else None
        if path is None or binding is None:
            return
        try:
            if path.exists() and read_snapshot_header(path).get("seq", -1) >= gallery.seq:
                self._snapshot_seq[modality.value] = gallery.seq  # another worker wrote it
                return
        except (OSError, ValueError):
            pass  # unreadable: replaced below
        try:
            seal_snapshot(gallery, self._snapshot_key or b"", path, binding)
        except OSError as exc:  # the gallery in memory is right; the next start decrypts
            log.warning("gallery snapshot %s not written: %r", path, exc)
            return
        self._snapshot_seq[modality.value] = gallery.seq


def _log_head(session: Session, modality: Modality) -> int:
    """The `seq` of the modality's last template change (read afresh, never from the session's
    identity map)."""
    version = session.exec(
        select(GalleryVersion.version).where(GalleryVersion.modality == modality.value)
    ).first()
    return version or 0


@dataclass(frozen=True)
class FaceMatching:
    """What enrollment and the gate need to find and compare faces."""

    embedder: FaceEmbedder
    gallery: Galleries
    tolerance: float
    margin: float
    max_pixels: int
    # Photos of one person may differ more than an identification match allows: 1:1 threshold.
    same_person_tolerance: float = 0.6
    # Videos: decoding bounds, and how many of one person's faces vote on who they are.
    video: VideoLimits = VideoLimits()
    track_votes: int = 5
    # A subject's distance over their templates (the gate's rule; enrollment's duplicate check
    # keeps the nearest template, the stricter test).
    rule: Rule = Rule.NEAREST


def start_face_enrollment(
    session: Session, store: MediaStore, subject_id: int, photos: list[bytes], max_photos: int
) -> Enrollment:
    """Keep the photos (encrypted) for the worker and record a pending enrollment."""
    photos = [p for p in photos if p]
    if not 1 <= len(photos) <= max_photos:
        raise EnrollmentRejected(
            "Upload between 1 and %(num)d photos of your face.", num=max_photos
        )
    return new_enrollment(session, store, subject_id, Modality.FACE, photos)


ENROLL_TASKS = {  # the task that finishes an enrollment (consent_service.biometrics.tasks)
    Modality.FACE: "biometrics.enroll_face",
    Modality.VOICE: "biometrics.enroll_voice",
}


def new_enrollment(
    session: Session, store: MediaStore, subject_id: int, modality: Modality, media: list[bytes]
) -> Enrollment:
    """A pending enrollment of these media, kept (encrypted) for the worker; its task is sent
    once the unit of work has committed. The account acting for the subject must be verified."""
    require_verified_subject(session, subject_id)
    enrollment = Enrollment(
        subject_id=subject_id, modality=modality.value, media_keys=[store.put(m) for m in media]
    )
    session.add(enrollment)
    session.flush()
    db.publish(session, ENROLL_TASKS[modality], enrollment.id)
    return enrollment


def _faces_of_one_person(matching: FaceMatching, photos: list[bytes]) -> list[np.ndarray]:
    embeddings = []
    for number, data in enumerate(photos, start=1):
        try:
            faces = matching.embedder.detect(decode_image(data, matching.max_pixels))
        except MediaRejected as exc:
            raise EnrollmentRejected(
                "Photo %(number)d: %(reason)s", number=number, reason=exc
            ) from None
        if not faces:
            raise EnrollmentRejected(
                "Photo %(number)d: no face was found. Use a clear, well-lit "
                "photo of your face looking at the camera.",
                number=number,
            )
        if len(faces) > 1:
            raise EnrollmentRejected(
                "Photo %(number)d shows %(faces)d faces; each photo must show only you.",
                number=number,
                faces=len(faces),
            )
        embeddings.append(faces[0].embedding)
    if not mutually_consistent(embeddings, matching.same_person_tolerance):
        raise EnrollmentRejected("The photos do not all show the same person.")
    return embeddings


def keep_error(enrollment: Enrollment, error: DomainError) -> None:
    """Why an enrollment stopped: English in `error` (operators, logs, the audit), message id and
    parameters in `error_params` for pages in the reader's language (`errors.stored_message`)."""
    enrollment.error = str(error)
    enrollment.error_params = error.to_json()


@dataclass(frozen=True)
class EnrollmentKind:
    """What differs between enrolling a face and a voice: how templates are drawn from the
    media, which gallery they join, and how the media are named in messages."""

    modality: Modality
    model_name: str
    gallery: Galleries
    tolerance: float
    # Vectors of one person from the raw media; EnrollmentRejected with a reason otherwise.
    extract: Callable[[list[bytes]], list[np.ndarray]]
    media: str  # N_("The photos"), N_("The recording")
    unavailable: str  # N_(what to say when the media are gone)


def face_enrollment(matching: FaceMatching) -> EnrollmentKind:
    return EnrollmentKind(
        modality=Modality.FACE,
        model_name=matching.embedder.model_name,
        gallery=matching.gallery,
        tolerance=matching.tolerance,
        extract=lambda photos: _faces_of_one_person(matching, photos),
        media=N_("The photos"),
        unavailable=N_("The uploaded photos are no longer available; please upload them again."),
    )


def template_count(session: Session, subject_id: int, modality: Modality) -> int:
    return len(
        session.exec(
            select(BiometricTemplate.id).where(
                BiometricTemplate.subject_id == subject_id,
                BiometricTemplate.modality == modality.value,
            )
        ).all()
    )


def wait_for_enrollment(engine: Engine, enrollment_id: str, timeout: float) -> Enrollment:
    """Poll until a worker has finished the enrollment; TimeoutError if none does in time."""
    deadline = time.monotonic() + timeout
    while True:
        with Session(engine, expire_on_commit=False) as s:
            row = s.get(Enrollment, enrollment_id)
            if row is None:
                raise LookupError(f"no enrollment {enrollment_id}")
            if row.status != EnrollmentStatus.PENDING.value:
                return row
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no worker finished enrollment {enrollment_id} within "
                f"{timeout:.0f} s; is one running (`consent-service worker`)?"
            )
        time.sleep(0.5)
