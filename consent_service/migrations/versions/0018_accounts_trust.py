"""accounts_trust: verified e-mail addresses, TOTP two-factor sign-in with recovery codes, and
invitations that carry an operator's or provider's role until the invited owner accepts.

Existing accounts stay unverified: nobody ever proved they hold their address (the gap this
closes). They verify from the page they are sent to on their next enrollment or grant.

Revision ID: 0018_accounts_trust
Revises: 0017_template_change
Create Date: 2026-12-02
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0018_accounts_trust"
down_revision = "0017_template_change"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user") as batch_op:
        batch_op.add_column(
            sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("totp_secret", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("totp_key", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("totp_enabled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("recovery_codes", sa.JSON(), nullable=True))
    op.create_table(
        "invitation",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("provider_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("staff_role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("new_account", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.ForeignKeyConstraint(["provider_id"], ["provider.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_invitation_user_id", "invitation", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_invitation_user_id", table_name="invitation")
    op.drop_table("invitation")
    with op.batch_alter_table("user") as batch_op:
        for name in (
            "recovery_codes",
            "totp_last_step",
            "totp_enabled_at",
            "totp_key",
            "totp_secret",
            "email_verified_at",
        ):
            batch_op.drop_column(name)
