"""Consent grants. Every change writes a new version row; nothing is updated in place."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlalchemy import true as sa_true
from sqlmodel import Field, SQLModel

from consent_service.timeutil import new_id, utcnow
from consent_service.vocabulary import GrantStatus


class GrantBase(SQLModel):
    modality: str = Field(max_length=16)
    operations: list[str] = Field(sa_column=Column(JSON, nullable=False))
    roles: list[str] = Field(sa_column=Column(JSON, nullable=False))
    all_providers: bool = False
    provider_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Free text in the person's words (what they had in mind); never checked by the gate.
    purpose: str = Field(default="", max_length=1000)
    # The purpose codes (`Purpose.code`) the grant covers; empty covers every purpose, which is
    # what grants from before purposes were checked mean. A job covered only by such a grant
    # may state no purpose at all.
    purposes: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    valid_from: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    valid_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class ConsentGrant(GrantBase, table=True):
    __tablename__ = "consent_grant"
    __table_args__ = (UniqueConstraint("grant_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    grant_id: str = Field(default_factory=new_id, index=True, max_length=32)
    version: int = 1
    subject_id: int = Field(foreign_key="subject.id", index=True)
    status: str = Field(default=GrantStatus.ACTIVE.value, max_length=16)
    # An explicit refusal ("no" to the providers named), not a consent: its version in force
    # has status `refused`; withdrawn, it has status `revoked` and no longer counts at all
    # (a withdrawn refusal is not a withdrawn consent: `consent.policy`).
    refusal: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    # Evidence of how this version came to be.
    notice_version: str = Field(default="", max_length=32)
    language: str = Field(default="en", max_length=16)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=400)
    identity_method: str = Field(default="", max_length=64)
    # How identity was checked, in detail: the live step-up session's id, its scores and the
    # match distance (consent/step_up.py); None for versions written without one (revocations,
    # rows from before).
    identity_evidence: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    actor: str = Field(default="", max_length=200)
    # Set when a guardian acted for a managed (child) subject: {"reference", "relationship"}.
    guardian: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class Purpose(SQLModel, table=True):
    """A purpose a job may state and a grant may cover, from the vocabulary the operator
    maintains (`consent-service purposes`). Codes are never deleted, only retired: grants and
    jobs keep naming them, and a retired code is refused for new jobs and grants."""

    __tablename__ = "purpose"

    code: str = Field(primary_key=True, max_length=64)
    label_en: str = Field(max_length=200)
    label_zh: str = Field(max_length=200)
    active: bool = Field(default=True, sa_column_kwargs={"server_default": sa_true()})
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
