"""operators: operator role, enrollment disputes, dashboard notices, worker heartbeat

Revision ID: 0006_operators
Revises: 0004_merge
Create Date: 2026-11-24
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006_operators"
down_revision = "0004_merge"
branch_labels = None
depends_on = None

_str = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("user") as batch_op:
        batch_op.add_column(
            sa.Column("is_operator", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "enrollment_dispute",
        sa.Column("id", _str(length=32), nullable=False),
        sa.Column("enrollment_id", _str(length=32), nullable=False),
        sa.Column("modality", _str(length=16), nullable=False),
        sa.Column("model", _str(length=64), nullable=False),
        sa.Column("claimant_subject_id", sa.Integer(), nullable=False),
        sa.Column("holder_subject_id", sa.Integer(), nullable=False),
        sa.Column("status", _str(length=24), nullable=False),
        sa.Column("vector_count", sa.Integer(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("resolved_by", _str(length=200), nullable=True),
        sa.Column("note", _str(length=2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["enrollment_id"], ["enrollment.id"]),
        sa.ForeignKeyConstraint(["claimant_subject_id"], ["subject.id"]),
        sa.ForeignKeyConstraint(["holder_subject_id"], ["subject.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("enrollment_id"),
    )
    for column in ("claimant_subject_id", "holder_subject_id", "status"):
        op.create_index(f"ix_enrollment_dispute_{column}", "enrollment_dispute", [column])
    op.create_table(
        "subject_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("kind", _str(length=64), nullable=False),
        sa.Column("message", _str(length=2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mailed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["subject_id"], ["subject.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_subject_notice_subject_id", "subject_notice", ["subject_id"])
    op.create_table(
        "worker_heartbeat",
        sa.Column("worker", _str(length=200), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker"),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeat")
    op.drop_index("ix_subject_notice_subject_id", "subject_notice")
    op.drop_table("subject_notice")
    for column in ("claimant_subject_id", "holder_subject_id", "status"):
        op.drop_index(f"ix_enrollment_dispute_{column}", "enrollment_dispute")
    op.drop_table("enrollment_dispute")
    with op.batch_alter_table("user") as batch_op:
        batch_op.drop_column("is_operator")
