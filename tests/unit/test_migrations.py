"""Migrations are code: upgrading an empty database yields exactly the models' schema."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

import consent_service.models  # noqa: F401 - registers every table on SQLModel.metadata
from consent_service.consent.purposes import DEFAULT_PURPOSES
from consent_service.migrate import MIGRATION_LOCK, alembic_config, upgrade
from consent_service.vocabulary import Scope


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


@pytest.mark.postgres
def test_hosts_starting_at_once_upgrade_a_new_postgresql_database_one_after_another(
    postgres_database,
):
    """Workers on several hosts run `upgrade` as they start, at once against a new database:
    each waits for the advisory lock (without it two of three failed here, each creating the
    same tables), then one migrates and the others find the schema at head."""
    with postgres_database() as url:
        engine = create_engine(url)
        try:
            with engine.connect() as holder:
                holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
                holder.commit()
                code = f"from consent_service.migrate import upgrade; upgrade({url!r})"
                hosts = [
                    subprocess.Popen(  # noqa: S603 - this interpreter, our own code
                        [sys.executable, "-c", code], stderr=subprocess.PIPE, text=True
                    )
                    for _ in range(3)
                ]
                deadline = time.monotonic() + 120
                waiting = 0
                while waiting < 3 and time.monotonic() < deadline:
                    if all(host.poll() is not None for host in hosts):
                        break  # none waited
                    time.sleep(0.2)
                    waiting = holder.execute(
                        text(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND NOT granted AND database = "
                            "(SELECT oid FROM pg_database WHERE datname = current_database())"
                        )
                    ).scalar_one()
                    holder.commit()
                holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                holder.commit()
            errors = [host.communicate(timeout=120)[1] for host in hosts]
        finally:
            engine.dispose()
        assert waiting == 3, errors
        assert [host.returncode for host in hosts] == [0, 0, 0], errors
        check_schema(url)


def test_token_status_gives_existing_revisions_the_sha256_of_their_token(tmp_path):
    """0021: revisions recorded before it are found by their token's SHA-256 too."""
    url = f"sqlite:///{tmp_path / 'consent.sqlite'}"
    upgrade(url, "0020_assurance")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for number, token in ((1, "a.b.c"), (2, None)):
                conn.execute(
                    text(
                        "INSERT INTO decision_revision (job_id, revision, decision, reasons, "
                        "token, jti, cause, created_at) VALUES ('j', :n, 'allow', '[]', :t, "
                        ":jti, 'media', '2026-12-01 00:00:00')"
                    ),
                    {"n": number, "t": token, "jti": f"{number:032x}"},
                )
        upgrade(url, "0021_token_status")
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT revision, token_sha256 FROM decision_revision ORDER BY revision")
            ).all()
    finally:
        engine.dispose()
    assert rows == [(1, hashlib.sha256(b"a.b.c").hexdigest()), (2, None)]


def _keys_after_scopes_migration(url: str) -> tuple:
    upgrade(url, "0026_retention")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO provider (id, name, status, created_at) "
                    "VALUES ('p', 'Acme', 'active', '2026-12-01 00:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO api_key (provider_id, prefix, key_hash, name, created_at) "
                    "VALUES ('p', 'abcd1234', :h, 'old', '2026-12-01 00:00:00')"
                ),
                {"h": "0" * 64},
            )
        upgrade(url, "0028_api_key_scopes")
        with engine.connect() as conn:
            scopes, expires = conn.execute(text("SELECT scopes, expires_at FROM api_key")).one()
    finally:
        engine.dispose()
    return json.loads(scopes) if isinstance(scopes, str) else scopes, expires


def test_api_key_scopes_give_existing_keys_every_scope_and_no_expiry(tmp_path):
    """0028: keys issued before scopes keep working for everything they did."""
    scopes, expires = _keys_after_scopes_migration(f"sqlite:///{tmp_path / 'consent.sqlite'}")
    assert sorted(scopes) == sorted(s.value for s in Scope) and expires is None


@pytest.mark.postgres
def test_api_key_scopes_migrate_existing_keys_on_postgresql(postgres_database):
    with postgres_database() as url:
        scopes, expires = _keys_after_scopes_migration(url)
    assert sorted(scopes) == sorted(s.value for s in Scope) and expires is None


def test_complaints_give_webhooks_that_wanted_every_event_the_complaint_events(tmp_path):
    """0027: a webhook that wanted every event there was (the default) wants the complaint
    events too; one that chose some keeps its choice."""
    url = f"sqlite:///{tmp_path / 'consent.sqlite'}"
    upgrade(url, "0026_retention")
    every = ["consent.revoked", "consent_request.answered", "job.decided"]
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for provider, events in (("p1", every), ("p2", ["job.decided"])):
                conn.execute(
                    text(
                        "INSERT INTO provider (id, name, status, created_at) "
                        "VALUES (:p, :p, 'active', '2026-12-01 00:00:00')"
                    ),
                    {"p": provider},
                )
                conn.execute(
                    text(
                        "INSERT INTO webhook (id, provider_id, url, events, active, "
                        "secret_ciphertext, secret_wrapped_key, secret_kek_id, created_at, "
                        "updated_at) VALUES (:p, :p, 'https://x', :e, 1, x'', x'', 'v0', "
                        "'2026-12-01 00:00:00', '2026-12-01 00:00:00')"
                    ),
                    {"p": provider, "e": json.dumps(events)},
                )
        upgrade(url, "0027_complaints")
        with engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT id, events FROM webhook")).all())
    finally:
        engine.dispose()
    assert json.loads(rows["p1"]) == sorted([*every, "complaint.opened", "complaint.resolved"])
    assert json.loads(rows["p2"]) == ["job.decided"]


def _purposes_after_migration(url: str) -> list[tuple]:
    upgrade(url, "0033_job_purposes")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(row)
                for row in conn.execute(
                    text("SELECT code, label_en, label_zh, active FROM purpose ORDER BY code")
                )
            ]
    finally:
        engine.dispose()


def test_job_purposes_seed_the_default_vocabulary(tmp_path):
    """0033: the vocabulary starts as `consent.purposes.DEFAULT_PURPOSES` says (the migration
    holds a copy, as migrations must)."""
    rows = _purposes_after_migration(f"sqlite:///{tmp_path / 'consent.sqlite'}")
    assert rows == sorted((c, en, zh, True) for c, en, zh in DEFAULT_PURPOSES)


@pytest.mark.postgres
def test_job_purposes_seed_the_default_vocabulary_on_postgresql(postgres_database):
    with postgres_database() as url:
        rows = _purposes_after_migration(url)
    assert rows == sorted((c, en, zh, True) for c, en, zh in DEFAULT_PURPOSES)


def test_job_purposes_leave_existing_grants_covering_every_purpose(tmp_path):
    """0033: a grant from before covers every purpose (`purposes` empty) and is no refusal."""
    url = f"sqlite:///{tmp_path / 'consent.sqlite'}"
    upgrade(url, "0032_notice_digest")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    'INSERT INTO "user" (id, email, password_hash, session_token, created_at, '
                    "is_active, is_authenticated, is_anonymous) VALUES (1, 'a@x', 'h', 't', "
                    "'2026-12-01 00:00:00', 1, 1, 0)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO subject (id, public_id, user_id, display_name, protect_only, "
                    "created_at) VALUES (1, 's', 1, 'A', 0, '2026-12-01 00:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO consent_grant (grant_id, version, subject_id, modality, "
                    "operations, roles, all_providers, provider_ids, purpose, valid_from, "
                    "status, notice_version, language, identity_method, actor, created_at) "
                    "VALUES ('g', 1, 1, 'face', '[\"face_swap\"]', '[\"source\"]', 1, '[]', '', "
                    "'2026-12-01 00:00:00', 'active', 'n', 'en', 'm', 'a', "
                    "'2026-12-01 00:00:00')"
                )
            )
        upgrade(url, "0033_job_purposes")
        with engine.connect() as conn:
            purposes, refusal = conn.execute(
                text("SELECT purposes, refusal FROM consent_grant")
            ).one()
    finally:
        engine.dispose()
    assert json.loads(purposes) == [] and not refusal
