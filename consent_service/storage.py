"""Where uploaded media wait for the worker: encrypted at rest, deleted after use.

Three stores behind one interface (`MediaStore`), chosen by `MEDIA_STORE` (`store_for`), each
with three shelves (`Shelf`): the uploads a job waits on (purged after a day), live recordings
under review and complaint evidence (kept for their own periods): wherever the uploads go, the
recordings and the evidence go too, so web and workers never need a shared folder:
- `local`: a folder (the embedded default; web and worker on one host);
- `database`: a table in the service's PostgreSQL database (the default on PostgreSQL), so every
  host that reaches the database reaches the media;
- `s3`: a bucket of an S3-compatible object store (boto3), for large deployments.

Every store keeps the same sealed blob (`seal`): an AES-GCM envelope under the media key whose
associated data is the blob's key, so a blob copied or renamed to another key does not open.
Stores never take part in the caller's transaction: a blob is written when `put` returns, and
the services delete it with `db.after_commit` once the deletion is recorded."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    LargeBinary,
    String,
    delete,
    insert,
    select,
)
from sqlmodel import Field, SQLModel

from consent_service.crypto import Envelope
from consent_service.settings import MediaStoreKind, Settings
from consent_service.timeutil import utcnow


class MediaStore(Protocol):
    """Holds raw media by opaque key between upload and processing.

    `put` returns a key; `get` raises KeyError for a key that is not (or no longer) there;
    `delete` is idempotent; `stale` lists the keys written before a time (retention)."""

    def put(self, data: bytes) -> str: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def stale(self, cutoff: datetime) -> list[str]: ...


def new_key() -> str:
    return secrets.token_hex(16)


def valid_key(key: str) -> bool:
    """Keys are the hex `new_key` makes: nothing that could name another file or object."""
    return key.isascii() and key.isalnum() and len(key) <= 64


def seal(envelope: Envelope, key: str, data: bytes) -> bytes:
    """The stored form of `data` under `key`: wrapped data key (length-prefixed), ciphertext."""
    ciphertext, wrapped = envelope.seal(data, key.encode())
    return len(wrapped).to_bytes(2, "big") + wrapped + ciphertext


def unseal(envelope: Envelope, key: str, blob: bytes) -> bytes:
    n = int.from_bytes(blob[:2], "big")
    return envelope.open(blob[2 + n :], blob[2 : 2 + n], key.encode())


class LocalMediaStore:
    """A local folder; each file is an AES-GCM envelope bound to its key."""

    def __init__(self, root: Path, envelope: Envelope):
        self.root = root
        self._envelope = envelope

    def _path(self, key: str) -> Path:
        if not valid_key(key):
            raise KeyError(key)
        return self.root / key

    def put(self, data: bytes) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        key = new_key()
        tmp = self.root / f".{key}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(seal(self._envelope, key, data))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self._path(key))
        return key

    def get(self, key: str) -> bytes:
        try:
            blob = self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None
        return unseal(self._envelope, key, blob)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def stale(self, cutoff: datetime) -> list[str]:
        if not self.root.is_dir():
            return []
        limit = cutoff.timestamp()
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_file() and valid_key(p.name) and p.stat().st_mtime < limit
        )


class Shelf(StrEnum):
    """What a store holds: uploads (`stale` feeds the media purge), live recordings kept for
    review, complaint evidence. Each shelf lists only its own blobs: the media purge never
    reaches a recording or a piece of evidence."""

    MEDIA = "media"
    RECORDINGS = "recordings"
    EVIDENCE = "evidence"


class MediaBlob(SQLModel, table=True):
    """One sealed blob of the database store (`DatabaseMediaStore`), until it is used."""

    __tablename__ = "media_blob"
    __table_args__ = (Index("ix_media_blob_shelf_created_at", "shelf", "created_at"),)

    key: str = Field(primary_key=True, max_length=64)
    blob: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True),
    )
    shelf: str = Field(
        default=Shelf.MEDIA.value,
        sa_column=Column(String(16), nullable=False, server_default=Shelf.MEDIA.value),
    )


_BLOBS = SQLModel.metadata.tables["media_blob"]


class DatabaseMediaStore:
    """Sealed blobs in the `media_blob` table, each call its own short transaction on `engine`
    (never the caller's: a put is durable when it returns, like a file). PostgreSQL only: on
    SQLite a second connection would wait on the request's own write lock."""

    def __init__(self, engine: Engine, envelope: Envelope, shelf: Shelf = Shelf.MEDIA):
        self._engine = engine
        self._envelope = envelope
        self._shelf = shelf.value

    def put(self, data: bytes) -> str:
        key = new_key()
        blob = seal(self._envelope, key, data)
        with self._engine.begin() as conn:
            conn.execute(
                insert(_BLOBS).values(key=key, blob=blob, created_at=utcnow(), shelf=self._shelf)
            )
        return key

    def get(self, key: str) -> bytes:
        if not valid_key(key):
            raise KeyError(key)
        with self._engine.connect() as conn:
            blob = conn.execute(select(_BLOBS.c.blob).where(_BLOBS.c.key == key)).scalar()
        if blob is None:
            raise KeyError(key)
        return unseal(self._envelope, key, bytes(blob))

    def delete(self, key: str) -> None:
        if not valid_key(key):
            raise KeyError(key)
        with self._engine.begin() as conn:
            conn.execute(delete(_BLOBS).where(_BLOBS.c.key == key))

    def stale(self, cutoff: datetime) -> list[str]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_BLOBS.c.key)
                .where(_BLOBS.c.shelf == self._shelf, _BLOBS.c.created_at < cutoff)
                .order_by(_BLOBS.c.key)
            )
            return [str(k) for k in rows.scalars()]


class S3MediaStore:
    """Sealed blobs as objects `<prefix><key>` in one bucket of an S3-compatible store. The
    client is boto3's (`s3_client`); credentials come from boto3's own chain (environment,
    shared files, instance roles), never from the service's settings."""

    def __init__(self, client: Any, bucket: str, envelope: Envelope, prefix: str = ""):
        from botocore.exceptions import ClientError

        self._client, self._bucket, self._prefix = client, bucket, prefix
        self._envelope = envelope
        self._client_error = ClientError

    def _name(self, key: str) -> str:
        if not valid_key(key):
            raise KeyError(key)
        return self._prefix + key

    def put(self, data: bytes) -> str:
        key = new_key()
        self._client.put_object(
            Bucket=self._bucket, Key=self._name(key), Body=seal(self._envelope, key, data)
        )
        return key

    def get(self, key: str) -> bytes:
        name = self._name(key)
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=name)
        except self._client_error as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise KeyError(key) from None
            raise
        return unseal(self._envelope, key, answer["Body"].read())

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self._bucket, Key=self._name(key))

    def stale(self, cutoff: datetime) -> list[str]:
        keys = []
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=self._prefix
        )
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"][len(self._prefix) :]
                if valid_key(key) and obj["LastModified"].astimezone(UTC) < cutoff:
                    keys.append(key)
        return sorted(keys)


class WithOldFolder:
    """A shelf's store that still reads (and deletes from) the local folder the shelf used
    before MEDIA_STORE covered it (recordings and complaint evidence were always local): what
    was sealed there stays readable until its own purge, and new blobs go to `store`."""

    def __init__(self, store: MediaStore, old: LocalMediaStore):
        self.store, self.old = store, old

    def put(self, data: bytes) -> str:
        return self.store.put(data)

    def get(self, key: str) -> bytes:
        try:
            return self.store.get(key)
        except KeyError:
            return self.old.get(key)

    def delete(self, key: str) -> None:
        self.store.delete(key)
        self.old.delete(key)

    def stale(self, cutoff: datetime) -> list[str]:
        return sorted(set(self.store.stale(cutoff)) | set(self.old.stale(cutoff)))


def s3_client(settings: Settings) -> Any:
    """boto3's S3 client for the configured endpoint (extra `s3`: boto3 is imported here only)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=settings.media_s3_endpoint_url or None,  # empty: AWS itself
        region_name=settings.media_s3_region,
    )


def store_for(
    settings: Settings,
    envelope: Envelope,
    engine: Callable[[], Engine],
    shelf: Shelf = Shelf.MEDIA,
) -> MediaStore:
    """The store `MEDIA_STORE` names (default: `database` on PostgreSQL, else `local`), for one
    shelf; `engine` gives the service's database engine, asked for only by the database store.
    Shelves: a folder each (local), a `shelf` column (database), a prefix each under
    MEDIA_S3_PREFIX (s3: `<prefix>recordings/<key>`, which the uploads' listing skips, since a
    key never holds a slash)."""
    kind = settings.media_store_kind
    if kind is MediaStoreKind.DATABASE:
        return DatabaseMediaStore(engine(), envelope, shelf)
    if kind is MediaStoreKind.S3:
        if not settings.media_s3_bucket:  # the settings refuse this; a guard for mypy's sake
            raise ValueError("MEDIA_STORE=s3 needs MEDIA_S3_BUCKET")
        prefix = settings.media_s3_prefix + ("" if shelf is Shelf.MEDIA else f"{shelf.value}/")
        return S3MediaStore(s3_client(settings), settings.media_s3_bucket, envelope, prefix)
    folders = {
        Shelf.MEDIA: settings.media_dir,
        Shelf.RECORDINGS: settings.recordings_dir,
        Shelf.EVIDENCE: settings.complaint_evidence_dir,
    }
    return LocalMediaStore(folders[shelf], envelope)
