"""complaint: complaints from the public page (`/complaints/new`), what they name, the two
clocks, the provider's answer and the operator's resolution; the evidence is sealed in the
evidence store and referenced by key. A webhook that wanted every event there was
(`job.decided`, `consent.revoked`, `consent_request.answered`: the default, "all") wants the two
complaint events too.

Revision ID: 0027_complaints
Revises: 0026_retention
Create Date: 2026-12-02
"""

import json

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0027_complaints"
down_revision = "0026_retention"
branch_labels = None
depends_on = None

_str = sqlmodel.sql.sqltypes.AutoString
_ALL_BEFORE = {"job.decided", "consent.revoked", "consent_request.answered"}
_COMPLAINT_EVENTS = ["complaint.opened", "complaint.resolved"]


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "complaint",
        sa.Column("id", _str(length=32), nullable=False),
        sa.Column("reference", _str(length=16), nullable=False),
        sa.Column("kind", _str(length=32), nullable=False),
        sa.Column("status", _str(length=20), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("name", _str(length=200), nullable=False),
        sa.Column("email", _str(length=320), nullable=False),
        sa.Column("language", _str(length=16), nullable=False),
        sa.Column("link_hash", _str(length=64), nullable=False),
        sa.Column("job_id", _str(length=32), nullable=True),
        sa.Column("token_jti", _str(length=32), nullable=True),
        sa.Column("provider_id", _str(), nullable=True),
        sa.Column("evidence_key", _str(length=64), nullable=True),
        sa.Column("evidence_name", _str(length=200), nullable=False),
        sa.Column("evidence_type", _str(length=100), nullable=False),
        sa.Column("evidence_bytes", sa.Integer(), nullable=False),
        sa.Column("evidence_sha256", _str(length=64), nullable=False),
        _ts("evidence_destroyed_at"),
        _ts("created_at", nullable=False),
        _ts("ack_due_at", nullable=False),
        _ts("resolve_due_at", nullable=False),
        _ts("acknowledged_at"),
        sa.Column("acknowledged_by", _str(length=200), nullable=True),
        _ts("provider_asked_at"),
        sa.Column("provider_question", sa.Text(), nullable=False),
        sa.Column("provider_answer", sa.Text(), nullable=True),
        sa.Column("provider_content_removed", sa.Boolean(), nullable=True),
        _ts("provider_answered_at"),
        sa.Column("outcome", _str(length=16), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=False),
        _ts("resolved_at"),
        sa.Column("resolved_by", _str(length=200), nullable=True),
        sa.ForeignKeyConstraint(["provider_id"], ["provider.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_complaint_reference", "complaint", ["reference"], unique=True)
    for column in ("status", "job_id", "provider_id"):
        op.create_index(f"ix_complaint_{column}", "complaint", [column])
    _set_events(lambda events: sorted(set(events) | set(_COMPLAINT_EVENTS)), _ALL_BEFORE)


def _set_events(change, wanted: set[str]) -> None:
    """Rewrite the events of every webhook whose events are exactly `wanted`."""
    conn = op.get_bind()
    webhook = sa.table("webhook", sa.column("id", sa.String), sa.column("events", sa.JSON))
    for row in conn.execute(sa.select(webhook.c.id, webhook.c.events)).fetchall():
        events = json.loads(row.events) if isinstance(row.events, str) else row.events
        if set(events or []) == wanted:
            conn.execute(
                webhook.update().where(webhook.c.id == row.id).values(events=change(events))
            )


def downgrade() -> None:
    _set_events(
        lambda events: sorted(set(events) - set(_COMPLAINT_EVENTS)),
        _ALL_BEFORE | set(_COMPLAINT_EVENTS),
    )
    for column in ("status", "job_id", "provider_id", "reference"):
        op.drop_index(f"ix_complaint_{column}", table_name="complaint")
    op.drop_table("complaint")
