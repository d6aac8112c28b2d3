"""template_change: the append-only log of gallery changes (a template added or removed), so a
worker applies what changed since the `seq` it holds instead of decrypting every template again;
`gallery_version.version` becomes the log's head (the `seq` of its last change). The heads of
both modalities are created here so two first enrollments never race to insert them.

Revision ID: 0017_template_change
Revises: 0016_audit_append_only
Create Date: 2026-12-02
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0017_template_change"
down_revision = "0016_audit_append_only"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "template_change",
        sa.Column("modality", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("op", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("template_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("modality", "seq"),
    )
    # Existing templates need no log rows: a worker starting up loads the whole gallery at the
    # head's current version and applies only the changes logged after it.
    head = sa.table("gallery_version", sa.column("modality", sa.String), sa.column("version"))
    conn = op.get_bind()
    present = {row[0] for row in conn.execute(sa.select(head.c.modality))}
    for modality in ("face", "voice"):
        if modality not in present:
            conn.execute(sa.insert(head).values(modality=modality, version=0))


def downgrade() -> None:
    op.drop_table("template_change")
