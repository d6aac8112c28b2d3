"""audit_merkle: the audit log becomes an RFC 9162 Merkle tree too (a leaf hash per entry, the
tree's root and frontier on the head) with signed checkpoints kept in `audit_checkpoint`. The
entries already there get their leaves and the head its root, computed from what they say.

Revision ID: 0015_audit_merkle
Revises: 0014_error_params
Create Date: 2026-12-02
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015_audit_merkle"
down_revision = "0014_error_params"
branch_labels = None
depends_on = None

EMPTY_ROOT_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def upgrade() -> None:
    with op.batch_alter_table("audit_event") as batch_op:
        batch_op.add_column(
            sa.Column(
                "leaf_hash",
                sqlmodel.sql.sqltypes.AutoString(length=64),
                nullable=False,
                server_default="",
            )
        )
    with op.batch_alter_table("audit_head") as batch_op:
        batch_op.add_column(
            sa.Column(
                "root",
                sqlmodel.sql.sqltypes.AutoString(length=64),
                nullable=False,
                server_default=EMPTY_ROOT_HEX,
            )
        )
        batch_op.add_column(
            sa.Column("frontier", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("root", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("timestamp", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("verifier_key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_checkpoint") as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_checkpoint_size"), ["size"], unique=False)
    _backfill()


def _backfill() -> None:
    """Leaves for the entries already written, and the head's root and frontier."""
    from consent_service.audit import merkle
    from consent_service.audit.service import canonical_entry

    events = sa.table(
        "audit_event",
        sa.column("seq", sa.Integer),
        sa.column("event_type", sa.String),
        sa.column("actor", sa.String),
        sa.column("subject_id", sa.Integer),
        sa.column("payload", sa.JSON),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("leaf_hash", sa.String),
    )
    head = sa.table(
        "audit_head",
        sa.column("id", sa.Integer),
        sa.column("seq", sa.Integer),
        sa.column("root", sa.String),
        sa.column("frontier", sa.JSON),
    )
    bind = op.get_bind()
    nodes: list[bytes] = []
    size = 0
    rows = bind.execute(
        sa.select(
            events.c.seq,
            events.c.event_type,
            events.c.actor,
            events.c.subject_id,
            events.c.payload,
            events.c.created_at,
        ).order_by(events.c.seq)
    ).all()
    for row in rows:
        leaf = merkle.leaf_hash(canonical_entry(*row))
        bind.execute(events.update().where(events.c.seq == row.seq).values(leaf_hash=leaf.hex()))
        nodes = merkle.frontier_append(nodes, size, leaf)
        size += 1
    if size:
        bind.execute(
            head.update()
            .where(head.c.id == 1)
            .values(root=merkle.frontier_root(nodes).hex(), frontier=[n.hex() for n in nodes])
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_checkpoint") as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_checkpoint_size"))
    op.drop_table("audit_checkpoint")
    with op.batch_alter_table("audit_head") as batch_op:
        batch_op.drop_column("frontier")
        batch_op.drop_column("root")
    with op.batch_alter_table("audit_event") as batch_op:
        batch_op.drop_column("leaf_hash")
