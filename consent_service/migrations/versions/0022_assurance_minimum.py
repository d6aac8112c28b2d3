"""Providers' minimum assurance per operation (`assurance_minimum`); what a decision and each of
its findings say about assurance (`decision.assurance_required`, `finding.assurance`, and the
outcome `assurance_too_low`, longer than the 16 characters `finding.outcome` had); the
assurance each enrollment gives (`enrollment.assurance`: every enrollment before this revision
was an upload, a file or the head-turn pictures: `uploaded`).

Revision ID: 0022_assurance_minimum
Revises: 0021_token_status
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0022_assurance_minimum"
down_revision = "0021_token_status"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assurance_minimum",
        sa.Column("provider_id", sa.String(length=32), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("minimum", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["provider_id"], ["provider.id"]),
        sa.PrimaryKeyConstraint("provider_id", "operation"),
    )
    with op.batch_alter_table("finding") as batch_op:
        batch_op.alter_column(
            "outcome",
            existing_type=sa.String(length=16),
            type_=sa.String(length=32),
            existing_nullable=False,
        )
        batch_op.add_column(sa.Column("assurance", sa.String(length=16), nullable=True))
    with op.batch_alter_table("decision") as batch_op:
        batch_op.add_column(sa.Column("assurance_required", sa.String(length=16), nullable=True))
    with op.batch_alter_table("enrollment") as batch_op:
        batch_op.add_column(
            sa.Column(
                "assurance", sa.String(length=16), nullable=False, server_default="uploaded"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("enrollment") as batch_op:
        batch_op.drop_column("assurance")
    with op.batch_alter_table("decision") as batch_op:
        batch_op.drop_column("assurance_required")
    with op.batch_alter_table("finding") as batch_op:
        batch_op.drop_column("assurance")
        batch_op.alter_column(
            "outcome",
            existing_type=sa.String(length=32),
            type_=sa.String(length=16),
            existing_nullable=False,
        )
    op.drop_table("assurance_minimum")
