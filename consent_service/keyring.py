"""The keyring: one key per purpose, every version named by a key id that is stored on what it
protects, loaded from files or the environment (a KMS implements `KeyProvider`), rotated by
`consent-service keys rotate <purpose>`.

Symmetric purposes live here (the template KEK, media, the audit MAC, pseudonyms); the two
signing keys keep their own key sets (`tokens.service` for decisions, `audit.checkpoints` for
checkpoints), which already carry key ids and publish their public halves.

Before the keyring one secret, TEMPLATE_KEK, derived every symmetric key. When it is set, its
keys stay readable as version `v0` of each purpose (what migration 0021 marks old rows with)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from consent_service.crypto import LEGACY_KEY_ID, UnknownKey, derive_key, write_new_key_file
from consent_service.settings import InsecureSettings, Settings
from consent_service.timeutil import as_utc, utcnow


class Purpose(StrEnum):
    TEMPLATE_KEK = "template-kek"  # wraps the data keys of every sealed row
    MEDIA = "media"  # wraps the data keys of uploaded media files
    AUDIT_MAC = "audit-mac"  # the audit hash chain's HMAC
    PSEUDONYMS = "pseudonyms"  # providers' subject_ref (HMAC); pinned per subject
    CHECKPOINT_SIGNING = "checkpoint-signing"  # Ed25519, audit.checkpoints
    DECISION_SIGNING = "decision-signing"  # Ed25519, tokens.service


SYMMETRIC = (Purpose.TEMPLATE_KEK, Purpose.MEDIA, Purpose.AUDIT_MAC, Purpose.PSEUDONYMS)
# How each key of before the keyring came from TEMPLATE_KEK (HKDF info); the KEK was the secret.
_LEGACY_INFO = {
    Purpose.MEDIA: "media-store",
    Purpose.AUDIT_MAC: "audit-chain",
    Purpose.PSEUDONYMS: "subject-pseudonyms",
}


class KeyringError(RuntimeError):
    """A key set that cannot be read, or a change the provider cannot make."""


@dataclass(frozen=True)
class KeyVersion:
    kid: str
    secret: bytes
    created: str = ""
    # Pseudonyms only: subjects created from this moment on (ISO 8601) get their references
    # from this version; later than `created` by more than the keyring's refresh, so every
    # process holds the version before any subject it applies to exists.
    not_before: str = ""

    def to_json(self) -> dict[str, str]:
        entry = {
            "kid": self.kid,
            "key": base64.b64encode(self.secret).decode(),
            "created": self.created,
        }
        if self.not_before:
            entry["not_before"] = self.not_before
        return entry


def new_version(not_before: datetime | None = None) -> KeyVersion:
    now = utcnow()
    return KeyVersion(
        f"{now:%Y%m%d}-{secrets.token_hex(4)}",
        secrets.token_bytes(32),
        now.isoformat(),
        not_before.isoformat() if not_before else "",
    )


def legacy_version(purpose: Purpose, template_kek: bytes) -> KeyVersion:
    """The key `purpose` had before the keyring, derived from TEMPLATE_KEK."""
    info = _LEGACY_INFO.get(purpose)
    return KeyVersion(LEGACY_KEY_ID, derive_key(template_kek, info) if info else template_kek)


def parse_key_set(text: str, where: str) -> list[KeyVersion]:
    """`{"keys": [{"kid", "key" (base64 of 32 bytes), "created"}, ...]}`, oldest first."""
    try:
        entries = json.loads(text)["keys"]
        versions = [
            KeyVersion(
                str(e["kid"]),
                base64.b64decode(e["key"], validate=True),
                str(e.get("created", "")),
                str(e.get("not_before", "")),
            )
            for e in entries
        ]
    except (json.JSONDecodeError, KeyError, TypeError, binascii.Error) as exc:
        raise KeyringError(f"{where}: not a key set ({exc!r})") from None
    kids = [v.kid for v in versions]
    if len(set(kids)) != len(kids) or any(not 1 <= len(k) <= 64 for k in kids):
        raise KeyringError(f"{where}: key ids must be unique and 1 to 64 characters")
    if any(len(v.secret) != 32 for v in versions):
        raise KeyringError(f"{where}: every key must be 32 bytes")
    return versions


def key_set_json(versions: list[KeyVersion]) -> str:
    return json.dumps({"keys": [v.to_json() for v in versions]}, indent=2) + "\n"


class KeyProvider(Protocol):
    """Where each purpose's key versions are kept. `versions` returns them oldest first (the
    newest protects new data), [] when there are none; `add` appends a new newest version
    (rotation) or raises KeyringError where this service does not manage the keys (the
    environment). A KMS implementation keeps the key set wrapped by a KMS key and unwraps it in
    `versions` (Tink's KMS-encrypted keyset), so key material never sits in plain files."""

    def versions(self, purpose: Purpose) -> list[KeyVersion]: ...

    def add(self, purpose: Purpose, version: KeyVersion) -> None: ...

    def where(self, purpose: Purpose) -> str: ...


class LocalKeyProvider:
    """One owner-only JSON file per purpose in a folder (`<purpose>.json`), or the key set given
    in the environment (KEYRING_<PURPOSE>: the JSON itself or the path of its file). With
    `create` (development), a purpose with no key gets one the first time it is asked for."""

    def __init__(self, folder: Path, inline: Mapping[Purpose, str | None], create: bool = False):
        self.folder = folder
        self._inline = {p: (v or "").strip() for p, v in inline.items()}
        self._create = create

    def _path(self, purpose: Purpose) -> Path | None:
        value = self._inline.get(purpose, "")
        if value.startswith("{"):
            return None
        return Path(value).expanduser() if value else self.folder / f"{purpose.value}.json"

    def where(self, purpose: Purpose) -> str:
        path = self._path(purpose)
        return str(path) if path else f"KEYRING_{purpose.name}"

    def versions(self, purpose: Purpose) -> list[KeyVersion]:
        path = self._path(purpose)
        if path is None:
            return parse_key_set(self._inline[purpose], f"KEYRING_{purpose.name}")
        if not path.exists() and self._create:
            write_new_key_file(path, key_set_json([new_version()]))
        try:
            text = path.read_text()
            for _ in range(50):  # another process's first start created it and is writing it
                if text or not self._create:
                    break
                time.sleep(0.02)
                text = path.read_text()
        except FileNotFoundError:
            if self._inline.get(purpose):  # named in the environment: it must be there
                raise KeyringError(
                    f"KEYRING_{purpose.name} names {path}, which does not exist"
                ) from None
            return []
        except OSError as exc:
            raise KeyringError(f"cannot read {path}: {exc}") from None
        return parse_key_set(text, str(path))

    def add(self, purpose: Purpose, version: KeyVersion) -> None:
        path = self._path(purpose)
        if path is None:
            raise KeyringError(
                f"the {purpose.value} keys come from KEYRING_{purpose.name}: add the new version "
                "there (`consent-service keys new`), restart, then run the rotation again"
            )
        kept = self.versions(purpose) if path.exists() else []
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key_set_json([*kept, version]))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


class PurposeKeys:
    """One purpose's view of the keyring (a `crypto.KeySource`): what envelopes, the audit
    chain and pseudonyms are given."""

    def __init__(self, keyring: Keyring, purpose: Purpose):
        self._keyring = keyring
        self.purpose = purpose

    @property
    def primary_id(self) -> str:
        return self._keyring.primary(self.purpose).kid

    def key(self, kid: str) -> bytes:
        return self._keyring.key(self.purpose, kid)


class Keyring:
    """Every symmetric purpose's versions, read from the provider and read again at most every
    `refresh` seconds (so a rotation made by another process is followed: new data goes under
    the new version within `refresh` seconds) and at once when a record names an unknown id."""

    def __init__(
        self,
        provider: KeyProvider,
        template_kek: bytes | None = None,
        refresh: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.provider = provider
        self._legacy = template_kek
        self.refresh = refresh
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[Purpose, tuple[float, list[KeyVersion]]] = {}

    def versions(self, purpose: Purpose, fresh: bool = False) -> list[KeyVersion]:
        with self._lock:
            now = self._clock()
            cached = self._cache.get(purpose)
            if cached is not None and not fresh and now - cached[0] < self.refresh:
                return cached[1]
            held = self.provider.versions(purpose)
            if self._legacy is not None and all(v.kid != LEGACY_KEY_ID for v in held):
                held = [legacy_version(purpose, self._legacy), *held]
            self._cache[purpose] = (now, held)
            return held

    def primary(self, purpose: Purpose) -> KeyVersion:
        held = self.versions(purpose)
        if not held:
            raise InsecureSettings(self._missing([purpose]))
        return held[-1]

    def key(self, purpose: Purpose, kid: str) -> bytes:
        for fresh in (False, True):
            for version in self.versions(purpose, fresh):
                if version.kid == kid:
                    return version.secret
        raise UnknownKey(f"{purpose.value} key {kid!r} is not in the keyring")

    def keys(self, purpose: Purpose) -> PurposeKeys:
        return PurposeKeys(self, purpose)

    def rotate(self, purpose: Purpose) -> KeyVersion:
        """Add a new newest version (new data goes under it); every older one stays readable.
        The first rotation also writes the key derived from TEMPLATE_KEK into the key set, so
        TEMPLATE_KEK can be dropped once nothing needs `v0` (pseudonyms always do)."""
        held = self.provider.versions(purpose)
        if self._legacy is not None and all(v.kid != LEGACY_KEY_ID for v in held):
            self.provider.add(purpose, legacy_version(purpose, self._legacy))
        grace = None
        if purpose is Purpose.PSEUDONYMS:
            grace = utcnow() + timedelta(seconds=2 * self.refresh + 1)
        version = new_version(grace)
        self.provider.add(purpose, version)
        self.versions(purpose, fresh=True)
        return version

    def check(self) -> None:
        """Refuse to go on when a purpose has no key (production: nothing is generated)."""
        missing = [p for p in SYMMETRIC if not self.versions(p, fresh=True)]
        if missing:
            raise InsecureSettings(self._missing(missing))

    def _missing(self, purposes: list[Purpose]) -> str:
        named = ", ".join(f"{p.value} ({self.provider.where(p)})" for p in purposes)
        return (
            f"no key for {named}: create them with `consent-service keys rotate <purpose>`, "
            "set KEYRING_<PURPOSE>, or keep TEMPLATE_KEK for the keys derived before the keyring"
        )


def keyring_for(settings: Settings, template_kek: bytes | None) -> Keyring:
    """The keyring these settings name (development creates missing keys in the home folder)."""
    inline = {
        Purpose.TEMPLATE_KEK: settings.keyring_template_kek,
        Purpose.MEDIA: settings.keyring_media,
        Purpose.AUDIT_MAC: settings.keyring_audit_mac,
        Purpose.PSEUDONYMS: settings.keyring_pseudonyms,
    }
    provider = LocalKeyProvider(settings.keyring_path, inline, create=not settings.is_production)
    return Keyring(provider, template_kek, refresh=settings.keyring_refresh_interval)


class Pseudonyms:
    """The subject reference a provider sees: HMAC-SHA256(k, provider id : subject public id),
    stable per provider, unlinkable across providers. Never re-keyed: a provider files its
    records under the reference, so a subject keeps the pseudonym key version in force when it
    was created (the newest whose `not_before` is not after the subject's `created_at`) for
    good; a rotation gives new subjects a new key and changes no reference ever handed out."""

    def __init__(self, versions: Callable[[], list[KeyVersion]]):
        self._versions = versions

    @classmethod
    def single(cls, key: bytes) -> Pseudonyms:
        version = KeyVersion(LEGACY_KEY_ID, key)
        return cls(lambda: [version])

    def version_for(self, subject_created: datetime) -> KeyVersion:
        moment = as_utc(subject_created)
        held = self._versions()
        chosen = held[0]
        for version in held[1:]:
            start = version.not_before or version.created
            if start and as_utc(datetime.fromisoformat(start)) <= moment:
                chosen = version
        return chosen

    def ref(self, provider_id: str, subject_public_id: str, subject_created: datetime) -> str:
        key = self.version_for(subject_created).secret
        message = f"{provider_id}:{subject_public_id}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]
