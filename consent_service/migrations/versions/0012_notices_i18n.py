"""notices_i18n: person notices keep a message key and its parameters, so each reader sees them
(on the dashboard and by mail) in their own language; `message` keeps the English text.

Revision ID: 0012_notices_i18n
Revises: 0011_merge
Create Date: 2026-11-24
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012_notices_i18n"
down_revision = "0011_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subject_notice") as batch_op:
        batch_op.add_column(
            sa.Column("message_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        # Existing rows keep their English `message` and no key: they are shown as written.
        batch_op.add_column(sa.Column("params", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("subject_notice") as batch_op:
        batch_op.drop_column("params")
        batch_op.drop_column("message_key")
