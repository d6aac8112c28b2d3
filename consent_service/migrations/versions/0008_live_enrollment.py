"""live enrollment: the head-turn challenge of a live face enrollment

Revision ID: 0008_live_enrollment
Revises: 0004_merge
Create Date: 2026-11-24 17:30:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008_live_enrollment"
down_revision = "0004_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "live_challenge",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enrollment_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.ForeignKeyConstraint(["enrollment_id"], ["enrollment.id"]),
        sa.ForeignKeyConstraint(["subject_id"], ["subject.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("enrollment_id"),
    )
    op.create_index(
        op.f("ix_live_challenge_subject_id"), "live_challenge", ["subject_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_live_challenge_subject_id"), table_name="live_challenge")
    op.drop_table("live_challenge")
