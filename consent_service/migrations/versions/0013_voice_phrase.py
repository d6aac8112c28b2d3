"""voice_phrase: live voice enrollment answers a challenge too: the phrase the person was asked
to read aloud and its language are kept with the challenge (`modality` tells the two kinds apart;
existing rows are face challenges).

Revision ID: 0013_voice_phrase
Revises: 0012_notices_i18n
Create Date: 2026-11-24
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013_voice_phrase"
down_revision = "0012_notices_i18n"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("live_challenge") as batch_op:
        batch_op.add_column(
            sa.Column("modality", sa.String(length=8), nullable=False, server_default="face")
        )
        batch_op.add_column(sa.Column("phrase", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("live_challenge") as batch_op:
        batch_op.drop_column("language")
        batch_op.drop_column("phrase")
        batch_op.drop_column("modality")
