"""The signed consent receipts: one per grant version, written once by a worker."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Text
from sqlmodel import Field, SQLModel


class ConsentReceipt(SQLModel, table=True):
    """The signed receipt of one grant version (rights/receipts.py): written once by a worker,
    never changed. The receipt's content is the JWS's payload, so what is served is exactly
    what was signed."""

    __tablename__ = "consent_receipt"

    id: int | None = Field(default=None, primary_key=True)
    grant_row_id: int = Field(foreign_key="consent_grant.id", unique=True)
    receipt_id: str = Field(max_length=36, unique=True)
    kid: str = Field(max_length=64)
    jws: str = Field(sa_column=Column(Text, nullable=False))
    signed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
