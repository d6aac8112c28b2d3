"""Where uploaded media wait for the worker: encrypted at rest, deleted after use.

Three stores behind one interface (`MediaStore`), chosen by `MEDIA_STORE` (`store_for`):
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
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Column, DateTime, Engine, LargeBinary, delete, insert, select
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


class MediaBlob(SQLModel, table=True):
    """One sealed upload of the database store (`DatabaseMediaStore`), until it is used."""

    __tablename__ = "media_blob"

    key: str = Field(primary_key=True, max_length=64)
    blob: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True),
    )


_BLOBS = SQLModel.metadata.tables["media_blob"]


class DatabaseMediaStore:
    """Sealed blobs in the `media_blob` table, each call its own short transaction on `engine`
    (never the caller's: a put is durable when it returns, like a file). PostgreSQL only: on
    SQLite a second connection would wait on the request's own write lock."""

    def __init__(self, engine: Engine, envelope: Envelope):
        self._engine = engine
        self._envelope = envelope

    def put(self, data: bytes) -> str:
        key = new_key()
        blob = seal(self._envelope, key, data)
        with self._engine.begin() as conn:
            conn.execute(insert(_BLOBS).values(key=key, blob=blob, created_at=utcnow()))
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
                select(_BLOBS.c.key).where(_BLOBS.c.created_at < cutoff).order_by(_BLOBS.c.key)
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


def s3_client(settings: Settings) -> Any:
    """boto3's S3 client for the configured endpoint (extra `s3`: boto3 is imported here only)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=settings.media_s3_endpoint_url or None,  # empty: AWS itself
        region_name=settings.media_s3_region,
    )


def store_for(settings: Settings, envelope: Envelope, engine: Callable[[], Engine]) -> MediaStore:
    """The media store `MEDIA_STORE` names (default: `database` on PostgreSQL, else `local`);
    `engine` gives the service's database engine, asked for only by the database store."""
    kind = settings.media_store_kind
    if kind is MediaStoreKind.DATABASE:
        return DatabaseMediaStore(engine(), envelope)
    if kind is MediaStoreKind.S3:
        if not settings.media_s3_bucket:  # the settings refuse this; a guard for mypy's sake
            raise ValueError("MEDIA_STORE=s3 needs MEDIA_S3_BUCKET")
        return S3MediaStore(
            s3_client(settings), settings.media_s3_bucket, envelope, settings.media_s3_prefix
        )
    return LocalMediaStore(settings.media_dir, envelope)
