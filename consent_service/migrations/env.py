"""Alembic environment: the metadata of every SQLModel table in the package."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import consent_service.models  # noqa: F401 - registers every table on SQLModel.metadata
from consent_service.db import make_engine

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
            # Batch mode lets later revisions alter SQLite tables too.
            context.configure(
                connection=connection, target_metadata=target_metadata, render_as_batch=True
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
