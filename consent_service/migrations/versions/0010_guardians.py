"""guardians: managed child subjects (an account may act for several subjects), the guardian
relationship, and the guardian named in a grant version's evidence

Revision ID: 0010_guardians
Revises: 0004_merge
Create Date: 2026-11-24
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010_guardians"
down_revision = "0004_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A guardian's account acts for its own subject and its children's: user_id is not unique.
    with op.batch_alter_table("subject") as batch_op:
        batch_op.drop_index("ix_subject_user_id")
        batch_op.create_index("ix_subject_user_id", ["user_id"], unique=False)
    with op.batch_alter_table("consent_grant") as batch_op:
        batch_op.add_column(sa.Column("guardian", sa.JSON(), nullable=True))
    op.create_table(
        "guardianship",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("guardian_user_id", sa.Integer(), nullable=False),
        sa.Column("relationship", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=False),
        sa.Column("declaration", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["subject_id"], ["subject.id"]),
        sa.ForeignKeyConstraint(["guardian_user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subject_id"),
    )
    op.create_index("ix_guardianship_guardian_user_id", "guardianship", ["guardian_user_id"])


def downgrade() -> None:
    op.drop_index("ix_guardianship_guardian_user_id", table_name="guardianship")
    op.drop_table("guardianship")
    with op.batch_alter_table("consent_grant") as batch_op:
        batch_op.drop_column("guardian")
    with op.batch_alter_table("subject") as batch_op:
        batch_op.drop_index("ix_subject_user_id")
        batch_op.create_index("ix_subject_user_id", ["user_id"], unique=True)
