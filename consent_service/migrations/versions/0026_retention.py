"""subject.destroy_templates_on_withdrawal: the person's choice to have their templates destroyed
when their last grant is withdrawn (retention's `templates_withdrawn` purge). Off for everyone
already here: nobody chose it.

Revision ID: 0026_retention
Revises: 0025_live_session
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0026_retention"
down_revision = "0025_live_session"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subject") as batch_op:
        batch_op.add_column(
            sa.Column(
                "destroy_templates_on_withdrawal",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("subject") as batch_op:
        batch_op.drop_column("destroy_templates_on_withdrawal")
