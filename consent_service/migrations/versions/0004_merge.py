"""Join the tokens and webhooks branches; index findings by grant for revocation look-ups.

Revision ID: 0004_merge
Revises: 0002_tokens, 0003_webhooks
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004_merge"
down_revision = ("0002_tokens", "0003_webhooks")
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("finding") as batch_op:
        batch_op.create_index(batch_op.f("ix_finding_grant_id"), ["grant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("finding") as batch_op:
        batch_op.drop_index(batch_op.f("ix_finding_grant_id"))
