"""subject.assurance: how a subject's enrolled face and voice were shown to be the account's own
(uploaded, live, reviewed; vocabulary.Assurance). Subjects enrolled before this migration were
enrolled from pictures and recordings the server could not tie to a live person: `uploaded`.

Revision ID: 0020_assurance
Revises: 0019_published_at
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_assurance"
down_revision = "0019_published_at"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subject") as batch_op:
        batch_op.add_column(sa.Column("assurance", sa.String(length=16), nullable=True))
    op.execute(
        "UPDATE subject SET assurance = 'uploaded' WHERE EXISTS "
        "(SELECT 1 FROM enrollment WHERE enrollment.subject_id = subject.id "
        "AND enrollment.status = 'completed')"
    )


def downgrade() -> None:
    with op.batch_alter_table("subject") as batch_op:
        batch_op.drop_column("assurance")
