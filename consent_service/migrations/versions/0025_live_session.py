"""live_session: the live consent session (the script shown, the one recording kept sealed for
review, the checks' scores, the operator's review), step_up (actions that wait for a short live
check of the person acting: a grant, a consent request's approval) and consent_grant.
identity_evidence (the live check behind a grant version).

Revision ID: 0025_live_session
Revises: 0024_media_store
Create Date: 2026-12-02
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0025_live_session"
down_revision = "0024_media_store"
branch_labels = None
depends_on = None

_str = sqlmodel.sql.sqltypes.AutoString


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "live_session",
        sa.Column("id", _str(length=32), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("purpose", _str(length=16), nullable=False),
        sa.Column("modality", _str(length=8), nullable=False),
        sa.Column("step_up_id", _str(length=32), nullable=True),
        sa.Column("moves", sa.JSON(), nullable=False),
        sa.Column("code", _str(length=16), nullable=False),
        sa.Column("language", _str(length=16), nullable=False),
        sa.Column("statement", sa.Text(), nullable=True),
        _ts("created_at", nullable=False),
        _ts("expires_at", nullable=False),
        _ts("used_at"),
        sa.Column("status", _str(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("published_at"),
        _ts("claimed_at"),
        _ts("finished_at"),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("heard", _str(length=400), nullable=False),
        sa.Column("error", _str(), nullable=True),
        sa.Column("error_params", sa.JSON(), nullable=True),
        sa.Column("enrollment_ids", sa.JSON(), nullable=False),
        sa.Column("recording_key", _str(length=64), nullable=True),
        sa.Column("recording_type", _str(length=100), nullable=False),
        sa.Column("recording_bytes", sa.Integer(), nullable=False),
        sa.Column("recording_sha256", _str(length=64), nullable=False),
        _ts("keep_until"),
        _ts("destroyed_at"),
        sa.Column("review_status", _str(length=16), nullable=True),
        sa.Column("reviewed_by", _str(length=200), nullable=True),
        _ts("reviewed_at"),
        sa.Column("review_note", _str(length=2000), nullable=False),
        sa.Column("document_seen", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["subject_id"], ["subject.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("subject_id", "step_up_id", "status", "review_status"):
        op.create_index(f"ix_live_session_{column}", "live_session", [column])
    op.create_table(
        "step_up",
        sa.Column("id", _str(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("kind", _str(length=32), nullable=False),
        sa.Column("modality", _str(length=8), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("return_to", _str(length=400), nullable=False),
        sa.Column("status", _str(length=16), nullable=False),
        sa.Column("live_session_id", _str(length=32), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("error", _str(), nullable=True),
        sa.Column("error_params", sa.JSON(), nullable=True),
        _ts("created_at", nullable=False),
        _ts("expires_at", nullable=False),
        _ts("finished_at"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.ForeignKeyConstraint(["subject_id"], ["subject.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("user_id", "subject_id", "status"):
        op.create_index(f"ix_step_up_{column}", "step_up", [column])
    with op.batch_alter_table("consent_grant") as batch_op:
        batch_op.add_column(sa.Column("identity_evidence", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consent_grant") as batch_op:
        batch_op.drop_column("identity_evidence")
    for column in ("user_id", "subject_id", "status"):
        op.drop_index(f"ix_step_up_{column}", table_name="step_up")
    op.drop_table("step_up")
    for column in ("subject_id", "step_up_id", "status", "review_status"):
        op.drop_index(f"ix_live_session_{column}", table_name="live_session")
    op.drop_table("live_session")
