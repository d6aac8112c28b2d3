"""consent requests, the faces kept for them, and decision revisions

Revision ID: 0005_consent_requests
Revises: 0004_merge
Create Date: 2026-11-24
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005_consent_requests"
down_revision = "0004_merge"
branch_labels = None
depends_on = None

_str = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "consent_request",
        sa.Column("id", _str(length=32), nullable=False),
        sa.Column("provider_id", _str(length=32), nullable=False),
        sa.Column("status", _str(length=16), nullable=False),
        sa.Column("email", _str(length=320), nullable=True),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("job_id", _str(length=32), nullable=True),
        sa.Column("finding_id", sa.Integer(), nullable=True),
        sa.Column("operation", _str(length=32), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", _str(length=200), nullable=True),
        sa.Column("link_hash", _str(length=64), nullable=False),
        sa.Column("modality", _str(length=8), nullable=True),
        sa.Column("face_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("face_wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("answered_by", sa.Integer(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("grant_id", _str(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["provider_id"], ["provider.id"]),
        sa.ForeignKeyConstraint(["subject_id"], ["subject.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["gate_job.id"]),
        sa.ForeignKeyConstraint(["finding_id"], ["finding.id"]),
        sa.ForeignKeyConstraint(["answered_by"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider_id", "idempotency_key"),
    )
    with op.batch_alter_table("consent_request") as batch_op:
        for column in ("provider_id", "status", "email", "subject_id", "job_id"):
            batch_op.create_index(batch_op.f(f"ix_consent_request_{column}"), [column])
    op.create_table(
        "finding_face",
        sa.Column("finding_id", sa.Integer(), nullable=False),
        sa.Column("job_id", _str(length=32), nullable=False),
        sa.Column("modality", _str(length=8), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["finding_id"], ["finding.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["gate_job.id"]),
        sa.PrimaryKeyConstraint("finding_id"),
    )
    with op.batch_alter_table("finding_face") as batch_op:
        batch_op.create_index(batch_op.f("ix_finding_face_job_id"), ["job_id"])
    op.create_table(
        "decision_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", _str(length=32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("decision", _str(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("token", sa.Text(), nullable=True),
        sa.Column("jti", _str(length=32), nullable=True),
        sa.Column("cause", _str(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["gate_job.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "revision"),
    )
    with op.batch_alter_table("decision_revision") as batch_op:
        batch_op.create_index(batch_op.f("ix_decision_revision_job_id"), ["job_id"])
    with op.batch_alter_table("decision") as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))
    with op.batch_alter_table("finding") as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("finding") as batch_op:
        batch_op.drop_column("revision")
    with op.batch_alter_table("decision") as batch_op:
        batch_op.drop_column("revision")
    op.drop_table("decision_revision")
    op.drop_table("finding_face")
    op.drop_table("consent_request")
