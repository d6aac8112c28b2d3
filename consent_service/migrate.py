"""Schema migrations (Alembic), run by `consent-service db upgrade`, `serve` and `worker`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The PostgreSQL advisory lock each upgrade holds while it runs (migrations/env.py): workers on
# several hosts start at once against a new database (or a new release's), each running
# `upgrade` as it starts; one migrates while the others wait, then find the schema at head.
# Any fixed 64-bit number.
MIGRATION_LOCK = 0x636F6E73656E74  # "consent"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
