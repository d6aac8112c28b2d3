"""Join the branches built in parallel on top of 0004: consent requests, operators, portal,
live enrollment, language, guardians.

Revision ID: 0011_merge
Revises: 0005_consent_requests, 0006_operators, 0007_portal, 0008_live_enrollment,
    0009_language, 0010_guardians
Create Date: 2026-11-24
"""

revision = "0011_merge"
down_revision = (
    "0005_consent_requests",
    "0006_operators",
    "0007_portal",
    "0008_live_enrollment",
    "0009_language",
    "0010_guardians",
)
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
