"""The keyring: the id of the key that protects each sealed row (template KEK) and each audit
entry (audit MAC), and the record of key rotations. Rows written before are marked `v0`: the
keys derived from TEMPLATE_KEK, which stay readable as version v0 of each purpose.

Revision ID: 0023_keyring
Revises: 0022_assurance_minimum
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0023_keyring"
down_revision = "0022_assurance_minimum"
branch_labels = None
depends_on = None

# (table, column): every column of a key id, backfilled with v0.
KEY_ID_COLUMNS = (
    ("biometric_template", "kek_id"),
    ("enrollment_dispute", "kek_id"),
    ("finding_face", "kek_id"),
    ("consent_request", "face_kek_id"),
    ("webhook", "secret_kek_id"),
    ("user", "totp_kek_id"),
    ("audit_event", "mac_key_id"),
)


def upgrade() -> None:
    for table, column in KEY_ID_COLUMNS:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(
                sa.Column(column, sa.String(length=64), nullable=False, server_default="v0")
            )
    op.create_index("ix_biometric_template_kek_id", "biometric_template", ["kek_id"])
    op.create_table(
        "key_rotation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rows_done", sa.Integer(), nullable=False),
    )
    op.create_index("ix_key_rotation_purpose", "key_rotation", ["purpose"])


def downgrade() -> None:
    op.drop_index("ix_key_rotation_purpose", table_name="key_rotation")
    op.drop_table("key_rotation")
    op.drop_index("ix_biometric_template_kek_id", table_name="biometric_template")
    for table, column in reversed(KEY_ID_COLUMNS):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column(column)
