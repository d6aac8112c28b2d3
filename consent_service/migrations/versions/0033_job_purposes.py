"""Purposes: the operator's purpose vocabulary (table `purpose`, seeded), a job's stated purpose
(`gate_job.purpose`, `purpose_detail`), the purposes a grant covers (`consent_grant.purposes`,
empty = every purpose, which is what every existing grant means), explicit refusals
(`consent_grant.refusal`) and the purpose a finding was not covered for
(`finding.uncovered_purpose`).

The seeded vocabulary is `consent.purposes.DEFAULT_PURPOSES` as it was at this revision (copied:
a migration must not change when the code does).

Revision ID: 0033_job_purposes
Revises: 0032_notice_digest
Create Date: 2026-12-03
"""

from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0033_job_purposes"
down_revision = "0032_notice_digest"
branch_labels = None
depends_on = None

_DEFAULTS = [
    ("entertainment", "Entertainment (apps, filters, games, personal fun)", "娱乐（应用、滤镜、游戏、个人娱乐）"),
    ("advertising", "Advertising and marketing", "广告与营销"),
    ("film_production", "Film, television and dubbing", "影视制作与配音"),
    ("education", "Education and training", "教育与培训"),
    ("research", "Research and model testing", "科学研究与模型测试"),
    ("accessibility", "Accessibility (e.g. a voice for someone who lost theirs)", "无障碍（例如为失声者重建声音）"),
    ("news", "News and journalism", "新闻报道"),
]


def upgrade() -> None:
    purpose = op.create_table(
        "purpose",
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("label_en", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("label_zh", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        purpose,
        [
            {"code": c, "label_en": en, "label_zh": zh, "active": True, "created_at": now}
            for c, en, zh in _DEFAULTS
        ],
    )
    with op.batch_alter_table("gate_job") as batch:
        batch.add_column(
            sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch.add_column(
            sa.Column(
                "purpose_detail", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True
            )
        )
    with op.batch_alter_table("consent_grant") as batch:
        batch.add_column(sa.Column("purposes", sa.JSON(), server_default="[]", nullable=False))
        batch.add_column(
            sa.Column("refusal", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("finding") as batch:
        batch.add_column(
            sa.Column(
                "uncovered_purpose", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("finding") as batch:
        batch.drop_column("uncovered_purpose")
    with op.batch_alter_table("consent_grant") as batch:
        batch.drop_column("refusal")
        batch.drop_column("purposes")
    with op.batch_alter_table("gate_job") as batch:
        batch.drop_column("purpose_detail")
        batch.drop_column("purpose")
    op.drop_table("purpose")
