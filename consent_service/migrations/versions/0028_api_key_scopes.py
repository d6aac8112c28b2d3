"""api_key.scopes, expires_at, last_used_at: scoped keys with an optional expiry (rotation sets
it to the end of its overlap window). Keys already issued get every scope, so nothing that
works today stops working; they do not expire.

Revision ID: 0028_api_key_scopes
Revises: 0027_complaints
Create Date: 2026-12-02
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0028_api_key_scopes"
down_revision = "0027_complaints"
branch_labels = None
depends_on = None

# The scopes as they were when this revision was written (vocabulary.Scope may grow later;
# a migration keeps its own copy).
ALL_SCOPES = sorted(["jobs:write", "jobs:read", "consent_requests", "webhooks:admin", "labels"])


def upgrade() -> None:
    with op.batch_alter_table("api_key") as batch_op:
        batch_op.add_column(
            sa.Column(
                "scopes", sa.JSON(), nullable=False, server_default=sa.text(f"'{json.dumps(ALL_SCOPES)}'")
            )
        )
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    # The default served the existing rows; new keys always name their scopes.
    with op.batch_alter_table("api_key") as batch_op:
        batch_op.alter_column("scopes", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("api_key") as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("scopes")
