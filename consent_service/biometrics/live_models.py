"""The live consent session (`LiveSession`), and the record of the retired enrollment pages'
challenges (`LiveChallenge`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, String, Text
from sqlmodel import Field, SQLModel

from consent_service.timeutil import new_id, utcnow


class LiveChallenge(SQLModel, table=True):
    """What the two retired enrollment pages asked (a head-turn sequence on the camera page, a
    phrase to read aloud on the microphone page), one row per challenge, pointing at the
    enrollment that answered it. Nothing writes these rows any more and the service reads none:
    they stay as the record of how those enrollments were made, for a person reviewing one (a
    dispute, a complaint). The enrollments themselves stay valid at assurance `uploaded`."""

    __tablename__ = "live_challenge"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    subject_id: int = Field(foreign_key="subject.id", index=True)
    modality: str = Field(
        default="face", sa_column=Column(String(8), nullable=False, server_default="face")
    )
    # Face: "front" first, then the turns asked ("left", "right") in the order the page asks
    # them. Voice: empty.
    steps: list[str] = Field(sa_column=Column(JSON, nullable=False))
    # Voice: the text the page asked the person to read, and its language (BCP 47, "en" or
    # "zh-CN"), kept with the enrollment it answered for review.
    phrase: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    language: str | None = Field(default=None, max_length=16)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    # Set when the frames are uploaded: a challenge answers one enrollment only.
    used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    enrollment_id: str | None = Field(
        default=None, foreign_key="enrollment.id", unique=True, max_length=32
    )


class LiveSession(SQLModel, table=True):
    """A live consent session: the prompts the page showed (head moves, then a code to read
    aloud, and for a grant a statement), the one continuous recording the browser sent, what the
    worker's checks found, and the recording's review by an operator.

    `purpose` is `enroll` (templates come from the recording; it is kept sealed until reviewed
    or the review window ends) or `step_up` (a short check that the person granting is the
    enrolled face or voice: `step_up_id` names the action it completes; the recording is
    destroyed as soon as it is checked)."""

    __tablename__ = "live_session"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    subject_id: int = Field(foreign_key="subject.id", index=True)
    purpose: str = Field(max_length=16)  # a LivePurpose
    # Step-up: the modality the action needs proved (its templates are matched); enroll: face.
    modality: str = Field(default="face", max_length=8)
    step_up_id: str | None = Field(default=None, max_length=32, index=True)
    # The script (live_recording.Script): the moves in order, the code, its language, the
    # statement (None when there is none).
    moves: list[str] = Field(sa_column=Column(JSON, nullable=False))
    code: str = Field(max_length=16)
    language: str = Field(max_length=16)
    statement: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    # Set when the recording arrives: a session is answered once.
    used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    status: str = Field(default="issued", max_length=16, index=True)  # a LiveSessionStatus
    attempts: int = 0
    published_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    claimed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # What the checks found: failure codes (live_recording.FAILURE_MESSAGES), scores, the words
    # the recogniser heard. No biometric data.
    failures: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    scores: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    heard: str = Field(default="", max_length=400)
    # Why it failed, in English, and as message id + parameters (errors.stored_message).
    error: str | None = None
    error_params: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # The enrollments the recording made (face, voice), so a rejected review removes them.
    enrollment_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The sealed recording (the recordings store's key, an AES-GCM envelope bound to it) and
    # its facts; the key is emptied when the recording is destroyed.
    recording_key: str | None = Field(default=None, max_length=64)
    recording_type: str = Field(default="", max_length=100)
    recording_bytes: int = 0
    recording_sha256: str = Field(default="", max_length=64)
    keep_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    destroyed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # Operator review (a ReviewStatus; None for sessions that go to no review).
    review_status: str | None = Field(default=None, max_length=16, index=True)
    reviewed_by: str | None = Field(default=None, max_length=200)
    reviewed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    review_note: str = Field(default="", max_length=2000)
    document_seen: bool = False
