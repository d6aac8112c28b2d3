"""gate_job.claimed_by / claimed_until: the task message that claimed the job and until when
its claim holds, so a duplicate delivery of a job being processed is not counted as an attempt
(five copies at once used to use up the three attempts and end the job failed).

Revision ID: 0030_job_claim_lease
Revises: 0029_signed_receipts
Create Date: 2026-12-03
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0030_job_claim_lease"
down_revision = "0029_signed_receipts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gate_job") as batch:
        batch.add_column(
            sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gate_job") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
