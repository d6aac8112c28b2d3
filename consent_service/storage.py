"""Where uploaded media wait for the worker: encrypted at rest, deleted after use."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol

from consent_service.crypto import Envelope


class MediaStore(Protocol):
    """Holds raw media by opaque key between upload and processing.

    `put` returns a key; `get` raises KeyError for a key that is not (or no longer) there;
    `delete` is idempotent.
    """

    def put(self, data: bytes) -> str: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...


class LocalMediaStore:
    """A local folder; each file is an AES-GCM envelope bound to its key."""

    def __init__(self, root: Path, envelope: Envelope):
        self.root = root
        self._envelope = envelope

    def _path(self, key: str) -> Path:
        if not key.isalnum():
            raise KeyError(key)
        return self.root / key

    def put(self, data: bytes) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(16)
        ciphertext, wrapped = self._envelope.seal(data, key.encode())
        tmp = self.root / f".{key}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(len(wrapped).to_bytes(2, "big") + wrapped + ciphertext)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self._path(key))
        return key

    def get(self, key: str) -> bytes:
        try:
            blob = self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None
        n = int.from_bytes(blob[:2], "big")
        return self._envelope.open(blob[2 + n :], blob[2 : 2 + n], key.encode())

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
