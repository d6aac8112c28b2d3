"""consent_receipt: the signed receipt of each grant version (a compact JWS under the decision
key set, typ `consent-receipt+jwt`), written by a worker after the version is committed. No
rows are made here: the receipts sweep signs every version that has none, old ones included.

Revision ID: 0029_signed_receipts
Revises: 0028_api_key_scopes
Create Date: 2026-12-02
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0029_signed_receipts"
down_revision = "0028_api_key_scopes"
branch_labels = None
depends_on = None

_str = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "consent_receipt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grant_row_id", sa.Integer(), nullable=False),
        sa.Column("receipt_id", _str(length=36), nullable=False),
        sa.Column("kid", _str(length=64), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["grant_row_id"], ["consent_grant.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("grant_row_id"),
        sa.UniqueConstraint("receipt_id"),
    )


def downgrade() -> None:
    op.drop_table("consent_receipt")
