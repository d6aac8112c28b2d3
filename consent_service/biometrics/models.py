"""Biometric templates (encrypted embeddings), the enrollments that make them, and the disputes
that hold an enrollment matching another account's templates."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    LargeBinary,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapper
from sqlmodel import Field, SQLModel

from consent_service.timeutil import new_id, utcnow
from consent_service.vocabulary import Assurance, DisputeStatus, EnrollmentStatus


class BiometricTemplate(SQLModel, table=True):
    __tablename__ = "biometric_template"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    subject_id: int = Field(foreign_key="subject.id", index=True)
    modality: str = Field(max_length=16, index=True)
    model: str = Field(max_length=64)
    # AES-256-GCM envelope: `ciphertext` under a per-row data key, itself wrapped by the KEK.
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # The id of the template KEK that wrapped the data key (keyring purpose `template-kek`).
    kek_id: str = Field(default="v0", max_length=64, index=True)
    enrollment_id: str | None = Field(default=None, foreign_key="enrollment.id")
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class Enrollment(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    subject_id: int = Field(foreign_key="subject.id", index=True)
    modality: str = Field(max_length=16)
    status: str = Field(default=EnrollmentStatus.PENDING.value, max_length=16)
    # Why it failed or waits, in English; and as {"message": msgid, "params": {...}} for pages
    # in the reader's language (see `errors.stored_message`); None on rows from before.
    error: str | None = None
    error_params: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Storage keys of the raw media; emptied once they are destroyed.
    media_keys: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    template_count: int = 0
    attempts: int = 0
    # The assurance its templates give (vocabulary.Assurance): `uploaded` for photos, files,
    # operator imports and the head-turn pictures; a live consent session's says `live`, and
    # `reviewed` once an operator approved its recording. The subject's level is the weakest
    # of its enrollments whose templates are in the gallery (biometrics/assurance.py).
    assurance: str = Field(
        default=Assurance.UPLOADED.value,
        max_length=16,
        sa_column_kwargs={"server_default": Assurance.UPLOADED.value},
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # When its task was last sent (at creation, then by the stale-work sweep), and when a worker
    # last claimed it (a claimed enrollment is running: the sweep leaves it alone for as long
    # as a worker may take). None on rows from before the columns.
    published_at: datetime | None = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    claimed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class GalleryVersion(SQLModel, table=True):
    """The head of a modality's template change log: `version` is the `seq` of its last change.
    Updating it allocates the next `seq` and holds the row until the commit, so changes commit
    in `seq` order and a worker reading `seq > n` never skips one committed later."""

    __tablename__ = "gallery_version"

    modality: str = Field(primary_key=True, max_length=16)
    version: int = 0


class EnrollmentDispute(SQLModel, table=True):
    """A new enrollment whose face or voice matches another account's templates. The new vectors
    wait here, encrypted and outside the gallery, until an operator decides."""

    __tablename__ = "enrollment_dispute"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    enrollment_id: str = Field(foreign_key="enrollment.id", unique=True)
    modality: str = Field(max_length=16)
    model: str = Field(max_length=64)
    claimant_subject_id: int = Field(foreign_key="subject.id", index=True)  # the new account
    holder_subject_id: int = Field(foreign_key="subject.id", index=True)  # already enrolled
    # a DisputeStatus: `open`, then a resolution or `withdrawn`
    status: str = Field(default=DisputeStatus.OPEN.value, max_length=24, index=True)
    vector_count: int = 0
    # The claimant's vectors (float64 rows) under one AES-256-GCM envelope; emptied on resolution.
    ciphertext: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))
    wrapped_key: bytes = Field(default=b"", sa_column=Column(LargeBinary, nullable=False))
    # The id of the template KEK that wrapped the data key (keyring purpose `template-kek`).
    kek_id: str = Field(default="v0", max_length=64)
    resolved_by: str | None = Field(default=None, max_length=200)
    note: str = Field(default="", max_length=2000)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    resolved_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class TemplateOp(StrEnum):
    ADD = "add"
    REMOVE = "remove"


class TemplateChange(SQLModel, table=True):
    """Append-only: every template added to or removed from a gallery, in the transaction that
    does it. Workers apply the changes after the last `seq` they hold (`biometrics.service.
    GalleryIndex`) instead of decrypting the whole gallery again. No biometric data: ids only."""

    __tablename__ = "template_change"

    modality: str = Field(primary_key=True, max_length=16)
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    model: str = Field(max_length=64)
    op: str = Field(max_length=8)  # a TemplateOp
    template_id: str = Field(max_length=32)
    subject_id: int  # no foreign key: the log outlives the subject's rows
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


def _log_change(connection: Connection, template: BiometricTemplate, op: TemplateOp) -> None:
    """One log row for one template change, on the flushing connection (so in its transaction)."""
    head = SQLModel.metadata.tables["gallery_version"]
    changed = connection.execute(
        update(head).where(head.c.modality == template.modality).values(version=head.c.version + 1)
    )
    if changed.rowcount == 0:  # the modality's first change (migrations create both heads)
        connection.execute(insert(head).values(modality=template.modality, version=1))
    seq = connection.execute(
        select(head.c.version).where(head.c.modality == template.modality)
    ).scalar_one()
    connection.execute(
        insert(SQLModel.metadata.tables["template_change"]).values(
            modality=template.modality,
            seq=seq,
            model=template.model,
            op=op.value,
            template_id=template.id,
            subject_id=template.subject_id,
            created_at=utcnow(),
        )
    )


# Every way a template row is added or deleted through the ORM is logged: enrollment, dispute
# resolution, erasure, operator imports, test factories. (Bulk `delete(BiometricTemplate)`
# statements would bypass this; the code has none, and must not.)
@event.listens_for(BiometricTemplate, "after_insert")
def _template_added(_mapper: Mapper, connection: Connection, target: BiometricTemplate) -> None:
    _log_change(connection, target, TemplateOp.ADD)


@event.listens_for(BiometricTemplate, "after_delete")
def _template_removed(_mapper: Mapper, connection: Connection, target: BiometricTemplate) -> None:
    _log_change(connection, target, TemplateOp.REMOVE)
