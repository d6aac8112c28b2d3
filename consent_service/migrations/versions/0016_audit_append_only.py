"""audit_append_only (PostgreSQL only): the audit tables refuse UPDATE, DELETE and TRUNCATE of
their rows, whoever asks, so a bug or an injected statement in the application cannot rewrite
the log. The head row (one row, moved by every append) may be updated but not deleted.

The app runs as the tables' owner in the single-role setup, and an owner can drop a trigger: this
stops mistakes and statements smuggled into the app's queries, not a determined owner. The real
boundary is a separate role: see "Audit log: an append-only role" in the README. SQLite: nothing
(no roles, and a SQLite file's writer can rewrite anything; signed checkpoints kept elsewhere
catch that).

Revision ID: 0016_audit_append_only
Revises: 0015_audit_merkle
Create Date: 2026-12-02
"""

from alembic import op

revision = "0016_audit_append_only"
down_revision = "0015_audit_merkle"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""
# (table, row operations refused)
GUARDED = [
    ("audit_event", "UPDATE OR DELETE"),
    ("audit_checkpoint", "UPDATE OR DELETE"),
    ("audit_head", "DELETE"),
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    for table, operations in GUARDED:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE {operations} ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, _ in GUARDED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
