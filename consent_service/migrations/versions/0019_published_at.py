"""published_at: when a job's or an enrollment's task was last sent (at submission, then by the
stale-work sweep), so the sweep publishes each stale row at most once per period; claimed_at:
when a worker last claimed an enrollment, so the sweep never re-publishes one still running;
leased_until: while a webhook attempt runs, the end of its lease (the per-provider cap counts
the deliveries leased now).

Revision ID: 0019_published_at
Revises: 0018_accounts_trust
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_published_at"
down_revision = "0018_accounts_trust"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows keep None: the sweep reads their creation time instead.
    with op.batch_alter_table("gate_job") as batch_op:
        batch_op.add_column(sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("enrollment") as batch_op:
        batch_op.add_column(sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("webhook_delivery") as batch_op:
        batch_op.add_column(sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_delivery") as batch_op:
        batch_op.drop_column("leased_until")
    with op.batch_alter_table("enrollment") as batch_op:
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("published_at")
    with op.batch_alter_table("gate_job") as batch_op:
        batch_op.drop_column("published_at")
