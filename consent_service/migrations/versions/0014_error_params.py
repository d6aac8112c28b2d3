"""error_params: an enrollment keeps why it failed (or waits on a dispute) as a message id and its
parameters, so its pages say it in the reader's language; `error` keeps the English text.

Revision ID: 0014_error_params
Revises: 0013_voice_phrase
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_error_params"
down_revision = "0013_voice_phrase"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enrollment") as batch_op:
        # Existing rows keep their English `error` and no parameters: shown as written.
        batch_op.add_column(sa.Column("error_params", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enrollment") as batch_op:
        batch_op.drop_column("error_params")
