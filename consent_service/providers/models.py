"""AI media providers and their API keys (shown once, stored as a hash)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel

from consent_service.timeutil import new_id, utcnow
from consent_service.vocabulary import ProviderStatus, Scope


class Provider(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(unique=True, max_length=200)
    status: str = Field(default=ProviderStatus.ACTIVE.value, max_length=16)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class ProviderRef(Protocol):
    """A provider as the services acting for it read it: its id and name. A `Provider` row (the
    portal, the CLI) or the `ProviderIdentity` an API key authenticated (`g.provider`)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class ProviderIdentity:
    """The provider an API request's key speaks for: plain values read with the key, since
    every API request needs one (`providers.service.authenticate_key`)."""

    id: str
    name: str


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    provider_id: str = Field(foreign_key="provider.id", index=True)
    # The first characters of the key, to tell keys apart; never enough to use it.
    prefix: str = Field(unique=True, max_length=16)
    key_hash: str = Field(max_length=64)
    name: str = Field(default="", max_length=200)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # What the key may do: `vocabulary.Scope` values, sorted. Keys from before scopes have all.
    scopes: list[str] = Field(
        default_factory=lambda: sorted(s.value for s in Scope),
        sa_column=Column(JSON, nullable=False),
    )
    # No longer accepted from this instant (None: until revoked); rotation sets it to the end of
    # the overlap window.
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # When a request last authenticated with it (to the hour: see providers.service), so staff
    # can tell whether a rotated key is still in use before the overlap ends.
    last_used_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class AssuranceMinimum(SQLModel, table=True):
    """The least assurance (vocabulary.Assurance) a provider requires of the people its edits of
    one operation touch; no row: any level will do. Below it the gate answers `needs_consent`
    with `assurance_too_low`."""

    __tablename__ = "assurance_minimum"

    provider_id: str = Field(foreign_key="provider.id", primary_key=True, max_length=32)
    operation: str = Field(primary_key=True, max_length=32)
    minimum: str = Field(max_length=16)
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
