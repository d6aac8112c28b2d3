"""AES-256-GCM envelopes: a fresh data key per record, wrapped by the key-encryption key (KEK)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE = 12


class Envelope:
    """Seal and open records whose associated data binds them to their row (swaps fail)."""

    def __init__(self, kek: bytes):
        if len(kek) != 32:
            raise ValueError("the key-encryption key must be 32 bytes")
        self._kek = AESGCM(kek)

    @classmethod
    def from_b64(cls, value: str) -> Envelope:
        return cls(base64.b64decode(value))

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        """Returns (ciphertext, wrapped data key)."""
        dek = AESGCM.generate_key(bit_length=256)
        n1, n2 = os.urandom(_NONCE), os.urandom(_NONCE)
        wrapped = n1 + self._kek.encrypt(n1, dek, aad)
        return n2 + AESGCM(dek).encrypt(n2, plaintext, aad), wrapped

    def open(self, ciphertext: bytes, wrapped: bytes, aad: bytes) -> bytes:
        dek = self._kek.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], aad)
        return AESGCM(dek).decrypt(ciphertext[:_NONCE], ciphertext[_NONCE:], aad)


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose (media, audit, pseudonyms) from one configured secret."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        secret
    )


def write_new_key_file(path: Path, text: str) -> None:
    """Create a development key file, owner-only (0600); a concurrent first start keeps the
    winner's file and this text is dropped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
