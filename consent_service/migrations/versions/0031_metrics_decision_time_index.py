"""An index on decision_revision.created_at: the metrics endpoint counts the decisions of its
window (METRICS_WINDOW) on every scrape, and reads only that window's rows through it.

Revision ID: 0031_metrics_decision_time_index
Revises: 0030_job_claim_lease
Create Date: 2026-12-03
"""

from alembic import op

revision = "0031_metrics_decision_time_index"
down_revision = "0030_job_claim_lease"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_decision_revision_created_at", "decision_revision", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_decision_revision_created_at", table_name="decision_revision")
