"""tokens: the signed decision token and its id on each decision

Revision ID: 0002_tokens
Revises: 0001
Create Date: 2026-11-24 17:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002_tokens'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token', sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column('jti', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
        batch_op.create_index(batch_op.f('ix_decision_jti'), ['jti'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decision_jti'))
        batch_op.drop_column('jti')
        batch_op.drop_column('token')
