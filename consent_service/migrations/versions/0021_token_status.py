"""decision_revision.jti and decision_revision.token_sha256, both unique and indexed: a token's
public status URL (`GET /api/v1/decisions/<jti or SHA-256>/status`) finds the revision that
signed it. Existing revisions get the SHA-256 of their stored token.

Revision ID: 0021_token_status
Revises: 0020_assurance
Create Date: 2026-12-02
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0021_token_status"
down_revision = "0020_assurance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decision_revision") as batch_op:
        batch_op.add_column(sa.Column("token_sha256", sa.String(length=64), nullable=True))
    bind = op.get_bind()
    revisions = sa.table(
        "decision_revision",
        sa.column("id", sa.Integer),
        sa.column("token", sa.Text),
        sa.column("token_sha256", sa.String),
    )
    rows = bind.execute(
        sa.select(revisions.c.id, revisions.c.token).where(revisions.c.token.is_not(None))
    ).all()
    for row_id, token in rows:
        bind.execute(
            revisions.update()
            .where(revisions.c.id == row_id)
            .values(token_sha256=hashlib.sha256(token.encode()).hexdigest())
        )
    with op.batch_alter_table("decision_revision") as batch_op:
        batch_op.create_index(batch_op.f("ix_decision_revision_jti"), ["jti"], unique=True)
        batch_op.create_index(
            batch_op.f("ix_decision_revision_token_sha256"), ["token_sha256"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("decision_revision") as batch_op:
        batch_op.drop_index(batch_op.f("ix_decision_revision_token_sha256"))
        batch_op.drop_index(batch_op.f("ix_decision_revision_jti"))
        batch_op.drop_column("token_sha256")
