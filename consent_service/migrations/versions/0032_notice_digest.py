"""user.notice_digest: whether the account gets the daily digest mail of the blocked and
protect-only attempts on its subjects (on for every account, existing ones included).

Revision ID: 0032_notice_digest
Revises: 0031_metrics_decision_time_index
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0032_notice_digest"
down_revision = "0031_metrics_decision_time_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user") as batch_op:
        batch_op.add_column(
            sa.Column("notice_digest", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("user") as batch_op:
        batch_op.drop_column("notice_digest")
