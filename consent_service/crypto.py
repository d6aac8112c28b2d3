"""AES-256-GCM envelopes: a fresh data key per record, wrapped by a key-encryption key (KEK)
named by its key id, so a keyring can rotate the KEK and old records still open."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE = 12
# The id of the keys derived from the one secret of before the keyring (TEMPLATE_KEK): what
# every row written before it is marked with (migration 0023_keyring).
LEGACY_KEY_ID = "v0"
# A wrapped data key written before key ids: nonce + AES-GCM(32-byte key) + tag, nothing else.
_LEGACY_WRAPPED = _NONCE + 32 + 16
# A wrapped data key now: this byte, the key id's length, the key id, then the legacy form (the
# key id is read before anything is decrypted, like Tink's key-id output prefix).
_WRAPPED_V1 = b"\x01"


class UnknownKey(KeyError):
    """A record names a key id its keyring does not hold."""


class KeySource(Protocol):
    """The versions of one purpose's key: `primary_id` is the version new data is protected
    with; `key(kid)` is any version still held (raises UnknownKey for one that is not)."""

    @property
    def primary_id(self) -> str: ...

    def key(self, kid: str) -> bytes: ...


class StaticKeys:
    """A fixed set of versions (tests, and the one key of before the keyring)."""

    def __init__(self, keys: Mapping[str, bytes], primary_id: str):
        if primary_id not in keys:
            raise ValueError(f"the primary key {primary_id!r} is not among the keys")
        self._keys = dict(keys)
        self._primary = primary_id

    @classmethod
    def single(cls, key: bytes, kid: str = LEGACY_KEY_ID) -> StaticKeys:
        return cls({kid: key}, kid)

    @property
    def primary_id(self) -> str:
        return self._primary

    def key(self, kid: str) -> bytes:
        try:
            return self._keys[kid]
        except KeyError:
            raise UnknownKey(kid) from None


def wrapped_key_id(wrapped: bytes) -> str:
    """The id of the KEK that wrapped this data key (records of before key ids: LEGACY_KEY_ID)."""
    if len(wrapped) == _LEGACY_WRAPPED:
        return LEGACY_KEY_ID
    if wrapped[:1] != _WRAPPED_V1 or len(wrapped) < 2 + wrapped[1] + _LEGACY_WRAPPED:
        raise ValueError("not a wrapped data key")
    return wrapped[2 : 2 + wrapped[1]].decode()


def _wrapped_body(wrapped: bytes) -> bytes:
    return wrapped if len(wrapped) == _LEGACY_WRAPPED else wrapped[2 + wrapped[1] :]


class Envelope:
    """Seal and open records whose associated data binds them to their row (swaps fail). The
    wrapped data key names its KEK's id, so records sealed under any version still held open,
    and `rewrap` moves one to the primary version without touching its ciphertext."""

    def __init__(self, keys: bytes | KeySource):
        if isinstance(keys, bytes):
            if len(keys) != 32:
                raise ValueError("the key-encryption key must be 32 bytes")
            keys = StaticKeys.single(keys)
        self._keys = keys
        self._aeads: dict[tuple[str, bytes], AESGCM] = {}

    @classmethod
    def from_b64(cls, value: str) -> Envelope:
        return cls(base64.b64decode(value))

    @property
    def primary_id(self) -> str:
        return self._keys.primary_id

    def _kek(self, kid: str) -> AESGCM:
        key = self._keys.key(kid)
        if len(key) != 32:
            raise ValueError("the key-encryption key must be 32 bytes")
        aead = self._aeads.get((kid, key))
        if aead is None:
            aead = self._aeads[(kid, key)] = AESGCM(key)
        return aead

    def _wrap(self, dek: bytes, aad: bytes) -> bytes:
        kid = self._keys.primary_id
        n1 = os.urandom(_NONCE)
        encoded = kid.encode()
        if not 1 <= len(encoded) <= 64:
            raise ValueError("a key id is 1 to 64 bytes")
        header = _WRAPPED_V1 + bytes([len(encoded)]) + encoded
        return header + n1 + self._kek(kid).encrypt(n1, dek, aad)

    def _unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        try:
            kid = wrapped_key_id(wrapped)
        except (ValueError, UnicodeDecodeError):
            raise InvalidTag from None  # a damaged header: as undecryptable as a damaged body
        body = _wrapped_body(wrapped)
        return self._kek(kid).decrypt(body[:_NONCE], body[_NONCE:], aad)

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        """Returns (ciphertext, wrapped data key); `wrapped_key_id` names the KEK."""
        dek = AESGCM.generate_key(bit_length=256)
        n2 = os.urandom(_NONCE)
        return n2 + AESGCM(dek).encrypt(n2, plaintext, aad), self._wrap(dek, aad)

    def open(self, ciphertext: bytes, wrapped: bytes, aad: bytes) -> bytes:
        dek = self._unwrap(wrapped, aad)
        return AESGCM(dek).decrypt(ciphertext[:_NONCE], ciphertext[_NONCE:], aad)

    def rewrap(self, wrapped: bytes, aad: bytes) -> bytes | None:
        """The data key wrapped by the primary KEK, or None when it already is (the record's
        ciphertext is unchanged: rotating the KEK re-encrypts 60 bytes per record)."""
        if wrapped_key_id(wrapped) == self._keys.primary_id:
            return None
        return self._wrap(self._unwrap(wrapped, aad), aad)


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
