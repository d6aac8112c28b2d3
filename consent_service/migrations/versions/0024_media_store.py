"""media_blob: the database media store's sealed uploads (MEDIA_STORE=database, the default on
PostgreSQL), so web and workers on different hosts reach the same media without a shared folder.

Revision ID: 0024_media_store
Revises: 0023_keyring
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0024_media_store"
down_revision = "0023_keyring"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_blob",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_media_blob_created_at", "media_blob", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_media_blob_created_at", table_name="media_blob")
    op.drop_table("media_blob")
