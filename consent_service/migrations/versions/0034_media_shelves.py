"""media_blob.shelf: the database media store keeps live recordings under review and complaint
evidence beside the uploads (shelves `recordings`, `evidence`, `media`), so that every host
reaching the database reaches them too; the media purge lists only the `media` shelf. Existing
rows are uploads.

Revision ID: 0034_media_shelves
Revises: 0033_job_purposes
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0034_media_shelves"
down_revision = "0033_job_purposes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media_blob") as batch_op:
        batch_op.add_column(
            sa.Column("shelf", sa.String(length=16), nullable=False, server_default="media")
        )
    op.create_index("ix_media_blob_shelf_created_at", "media_blob", ["shelf", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_media_blob_shelf_created_at", table_name="media_blob")
    with op.batch_alter_table("media_blob") as batch_op:
        batch_op.drop_column("shelf")
