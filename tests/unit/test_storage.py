"""The media stores' contract, run against all three: a local folder, a table in a real
PostgreSQL database and a bucket of a real S3-compatible server (moto's server mode, started
here on a free port). Encrypted blobs bound to their key, gone after delete, listed for
retention."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import text
from sqlmodel import SQLModel

from consent_service.crypto import Envelope
from consent_service.db import make_engine
from consent_service.settings import Settings
from consent_service.storage import (
    DatabaseMediaStore,
    LocalMediaStore,
    MediaBlob,
    MediaStore,
    S3MediaStore,
    Shelf,
    WithOldFolder,
    new_key,
    s3_client,
    store_for,
)
from consent_service.timeutil import utcnow
from tests.support import moto_server

MEDIA = b"\xff\xd8\xff\xe0 a person's photo, every byte of it private " * 50
BUCKET = "consent-media"


@dataclass
class Backend:
    """A store and a look behind it: the stored bytes of a key, a blob moved to another key,
    and a store with another media key over the same place."""

    store: MediaStore
    raw: Callable[[str], bytes]
    move: Callable[[str, str], None]
    thief: Callable[[Envelope], MediaStore]
    shelf: Callable[[Shelf], MediaStore]  # the same place's other shelves


@pytest.fixture(scope="module")
def s3_url(tmp_path_factory) -> Iterator[str]:
    """moto's S3-compatible server (a registry package, `moto[server]`) in its own process."""
    with moto_server(tmp_path_factory.mktemp("moto") / "server.log") as url:
        yield url


@pytest.fixture
def s3_settings(s3_url, monkeypatch) -> Settings:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key")
    bucket = f"{BUCKET}-{secrets.token_hex(4)}"
    settings = Settings(
        media_store="s3",
        media_s3_bucket=bucket,
        media_s3_endpoint_url=s3_url,
        media_s3_region="us-east-1",
    )
    s3_client(settings).create_bucket(Bucket=bucket)
    return settings


def _local(tmp_path: Path, envelope: Envelope) -> Backend:
    settings = Settings(consent_service_home=tmp_path)
    store = store_for(settings, envelope, lambda: pytest.fail("no database for a folder"))
    assert isinstance(store, LocalMediaStore)
    return Backend(
        store,
        raw=lambda key: (store.root / key).read_bytes(),
        move=lambda a, b: (store.root / a).replace(store.root / b),
        thief=lambda other: LocalMediaStore(store.root, other),
        shelf=lambda shelf: store_for(settings, envelope, lambda: pytest.fail("no db"), shelf),
    )


@pytest.fixture(params=["local", "database", "s3"])
def backend(request, tmp_path, envelope) -> Iterator[Backend]:
    if request.param == "local":
        yield _local(tmp_path, envelope)
    elif request.param == "database":
        with request.getfixturevalue("postgres_database")() as url:
            engine = make_engine(url)
            SQLModel.metadata.create_all(engine, tables=[SQLModel.metadata.tables["media_blob"]])
            settings = Settings(database_url=url)
            store = store_for(settings, envelope, lambda: engine)
            assert isinstance(store, DatabaseMediaStore)  # the default on PostgreSQL

            def raw(key: str) -> bytes:
                with engine.connect() as c:
                    q = text("SELECT blob FROM media_blob WHERE key = :k")
                    return bytes(c.execute(q, {"k": key}).scalar_one())

            def move(a: str, b: str) -> None:
                with engine.begin() as c:
                    c.execute(text("DELETE FROM media_blob WHERE key = :b"), {"b": b})
                    c.execute(
                        text("UPDATE media_blob SET key = :b WHERE key = :a"), {"a": a, "b": b}
                    )

            try:
                yield Backend(
                    store,
                    raw,
                    move,
                    lambda other: DatabaseMediaStore(engine, other),
                    lambda shelf: store_for(settings, envelope, lambda: engine, shelf),
                )
            finally:
                engine.dispose()
    else:
        settings = request.getfixturevalue("s3_settings")
        store = store_for(settings, envelope, lambda: pytest.fail("no database for S3"))
        assert isinstance(store, S3MediaStore)
        client, prefix = s3_client(settings), settings.media_s3_prefix

        def raw_s3(key: str) -> bytes:
            return client.get_object(Bucket=settings.media_s3_bucket, Key=prefix + key)[
                "Body"
            ].read()

        def move_s3(a: str, b: str) -> None:
            bucket = settings.media_s3_bucket
            client.copy_object(
                Bucket=bucket, Key=prefix + b, CopySource={"Bucket": bucket, "Key": prefix + a}
            )
            client.delete_object(Bucket=bucket, Key=prefix + a)

        yield Backend(
            store,
            raw_s3,
            move_s3,
            lambda other: S3MediaStore(client, settings.media_s3_bucket, other, prefix),
            lambda shelf: store_for(settings, envelope, lambda: pytest.fail("no db"), shelf),
        )


# ---------------------------------------------------------------------------- the contract
def test_put_then_get_returns_the_bytes(backend):
    key = backend.store.put(MEDIA)
    assert key.isalnum()
    assert backend.store.get(key) == MEDIA


def test_keys_are_unique(backend):
    assert len({backend.store.put(MEDIA) for _ in range(20)}) == 20


def test_stored_bytes_hold_no_plaintext(backend):
    key = backend.store.put(MEDIA)
    stored = backend.raw(key)
    assert b"private" not in stored
    assert MEDIA[:24] not in stored
    assert len(stored) > len(MEDIA)  # nonce, tag and the wrapped data key besides


def test_get_after_delete_raises_key_error(backend):
    key = backend.store.put(MEDIA)
    backend.store.delete(key)
    with pytest.raises(KeyError):
        backend.store.get(key)
    assert key not in backend.store.stale(utcnow() + timedelta(days=1))


def test_delete_is_idempotent(backend):
    key = backend.store.put(MEDIA)
    backend.store.delete(key)
    backend.store.delete(key)
    backend.store.delete(secrets.token_hex(16))


def test_unknown_key_raises_key_error(backend):
    backend.store.put(MEDIA)
    with pytest.raises(KeyError):
        backend.store.get(secrets.token_hex(16))


@pytest.mark.parametrize(
    "key",
    ["../victim", "..", "/etc/passwd", "sub/victim", "victim\x00", "", ".hidden", "a b", "..\\x"],
)
def test_keys_that_could_name_another_blob_are_refused(backend, key):
    backend.store.put(MEDIA)
    with pytest.raises(KeyError):
        backend.store.get(key)
    with pytest.raises(KeyError):
        backend.store.delete(key)


def test_blob_moved_to_another_key_does_not_open(backend):
    first, second = backend.store.put(MEDIA), backend.store.put(b"other media")
    backend.move(first, second)
    with pytest.raises(InvalidTag):
        backend.store.get(second)


def test_another_media_key_cannot_read_the_blobs(backend):
    key = backend.store.put(MEDIA)
    with pytest.raises(InvalidTag):
        backend.thief(Envelope(secrets.token_bytes(32))).get(key)


def test_stale_lists_what_was_written_before_the_cutoff(backend):
    before = utcnow() - timedelta(minutes=5)
    key = backend.store.put(MEDIA)
    assert key not in backend.store.stale(before)
    assert key in backend.store.stale(utcnow() + timedelta(minutes=5))


@pytest.mark.parametrize("shelf", [Shelf.RECORDINGS, Shelf.EVIDENCE])
def test_each_shelf_keeps_its_own_and_the_media_purge_lists_only_uploads(backend, shelf):
    """Recordings under review and complaint evidence live wherever the uploads do (so every
    host reaches them), and the media purge, which lists the uploads' shelf, never sees them."""
    kept = backend.shelf(shelf)
    recording, upload = kept.put(MEDIA), backend.store.put(b"an upload")
    later = utcnow() + timedelta(minutes=5)
    assert upload in backend.store.stale(later) and recording not in backend.store.stale(later)
    assert recording in kept.stale(later) and upload not in kept.stale(later)
    assert kept.get(recording) == MEDIA and backend.store.get(upload) == b"an upload"
    kept.delete(recording)
    with pytest.raises(KeyError):
        kept.get(recording)
    assert backend.store.get(upload) == b"an upload"


def test_a_shelf_still_reads_what_its_old_folder_holds(backend, tmp_path, envelope):
    """Recordings and evidence were sealed into local folders before MEDIA_STORE covered them:
    those stay readable (and deletable) while new ones go to the configured store."""
    old = LocalMediaStore(tmp_path / "old-recordings", envelope)
    before = old.put(MEDIA)
    shelf = WithOldFolder(backend.shelf(Shelf.RECORDINGS), old)
    after = shelf.put(b"a new recording")
    assert shelf.get(before) == MEDIA and shelf.get(after) == b"a new recording"
    with pytest.raises(KeyError):
        old.get(after)  # new blobs never go to the folder
    shelf.delete(before)
    with pytest.raises(KeyError):
        shelf.get(before)
    with pytest.raises(KeyError):
        shelf.get(new_key())


# ---------------------------------------------------------------------------- the local folder
def test_local_files_leave_no_temporary_behind(store):
    key = store.put(MEDIA)
    assert [p.name for p in store.root.rglob("*") if p.is_file()] == [key]


def test_local_keys_cannot_leave_the_folder(store, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"not yours")
    with pytest.raises(KeyError):
        store.get("../victim")
    with pytest.raises(KeyError):
        store.delete("../victim")
    assert victim.read_bytes() == b"not yours"


def test_local_stale_goes_by_the_files_time(store):
    old, fresh = store.put(b"old"), store.put(b"fresh")
    long_ago = (utcnow() - timedelta(days=2)).timestamp()
    os.utime(store.root / old, (long_ago, long_ago))
    assert store.stale(utcnow() - timedelta(days=1)) == [old]
    assert fresh in store.stale(utcnow() + timedelta(minutes=1))


# ---------------------------------------------------------------------------- choosing a store
def test_the_default_store_follows_the_database(tmp_path):
    assert Settings(consent_service_home=tmp_path).media_store_kind == "local"
    pg = Settings(database_url="postgresql+psycopg://u@127.0.0.1/db")
    assert pg.media_store_kind == "database"
    assert Settings(database_url=pg.database_url, media_store="local").media_store_kind == "local"


def test_settings_refuse_a_store_they_cannot_reach(tmp_path):
    with pytest.raises(ValueError, match="MEDIA_S3_BUCKET"):
        Settings(consent_service_home=tmp_path, media_store="s3")
    with pytest.raises(ValueError, match="PostgreSQL"):
        Settings(consent_service_home=tmp_path, media_store="database")


def test_media_blob_is_a_table_of_the_schema():
    assert "media_blob" in SQLModel.metadata.tables
    assert MediaBlob.__tablename__ == "media_blob"
