"""Migrations are code: upgrading an empty database yields exactly the models' schema."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

import consent_service.models  # noqa: F401 - registers every table on SQLModel.metadata
from consent_service.migrate import alembic_config, upgrade


def check_schema(url: str) -> None:
    engine = create_engine(url)
    try:
        inspector = inspect(engine)
        assert set(inspector.get_table_names()) == set(SQLModel.metadata.tables) | {
            "alembic_version"
        }
        for name, table in SQLModel.metadata.tables.items():
            columns = {c["name"] for c in inspector.get_columns(name)}
            assert columns == set(table.columns.keys()), name
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
            # Areas add revisions on branches of their own; every head must be applied.
            heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
            assert set(MigrationContext.configure(conn).get_current_heads()) == heads
    finally:
        engine.dispose()


def test_upgrade_on_an_empty_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'consent.sqlite'}"
    upgrade(url)
    check_schema(url)


def test_upgrade_twice_is_harmless(tmp_path):
    url = f"sqlite:///{tmp_path / 'consent.sqlite'}"
    upgrade(url)
    upgrade(url)
    check_schema(url)


def test_models_declare_the_tables_the_service_needs():
    # Guards the comparison above against an empty or partial metadata.
    assert {
        "user",
        "subject",
        "consent_grant",
        "biometric_template",
        "enrollment",
        "gallery_version",
        "provider",
        "api_key",
        "gate_job",
        "media_item",
        "decision",
        "finding",
        "audit_event",
        "audit_head",
    } <= set(SQLModel.metadata.tables)


@pytest.mark.postgres
def test_upgrade_on_an_empty_postgresql_database(postgres_database):
    with postgres_database() as url:
        upgrade(url)
        check_schema(url)
