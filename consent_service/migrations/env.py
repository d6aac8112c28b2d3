"""Alembic environment: the metadata of every SQLModel table in the package."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

import consent_service.models  # noqa: F401 - registers every table on SQLModel.metadata
from consent_service.db import make_engine
from consent_service.migrate import MIGRATION_LOCK

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:  # consent_service.migrate sets it from the Settings
        raise RuntimeError("the Alembic config names no sqlalchemy.url")
    return url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            locked = connection.dialect.name == "postgresql"
            if locked:
                # A session lock (a commit releases no advisory lock): the commit ends the
                # lock's own transaction, so Alembic begins and commits its own below.
                connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
                connection.commit()
            try:
                # Batch mode lets later revisions alter SQLite tables too.
                context.configure(
                    connection=connection, target_metadata=target_metadata, render_as_batch=True
                )
                with context.begin_transaction():
                    context.run_migrations()
            finally:
                if locked:
                    connection.rollback()  # whatever a failed revision left open
                    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                    connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
