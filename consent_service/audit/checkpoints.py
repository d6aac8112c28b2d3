"""Signed checkpoints of the audit log: (origin, size, root, timestamp) as a C2SP signed note.

The note's text (every line ends with a newline):

    <origin>                       e.g. consent.example.com/audit
    <size>                         decimal number of entries
    <root>                         base64 (standard, padded) of the 32-byte RFC 9162 tree head
    timestamp <unix seconds>       an extension line (C2SP tlog-checkpoint allows them)

then an empty line and one signature line per signer: `— <key name> <base64(key id || sig)>`,
where the key id is the first 4 bytes of SHA-256(<key name> || "\\n" || 0x01 || public key) and
the signature is Ed25519 over the text above (C2SP signed-note). The key's verifier string,
`<key name>+<key id hex>+<base64(0x01 || public key)>`, is what a witness pins. The key is its own
(AUDIT_CHECKPOINT_KEY): no other secret derives it and it derives nothing. Its verifier keys, one
per line (AUDIT_CHECKPOINT_PUBLIC_KEYS, by default a `.pub` file beside the key file, written with
it), are all the web reads: it publishes them and never holds a signing key."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from consent_service.crypto import write_new_key_file
from consent_service.settings import InsecureSettings, Settings

DEV_KEY_FILE = "audit-checkpoint.key"
PUBLIC_FILE_SUFFIX = ".pub"
_ED25519 = b"\x01"
_SIG_PREFIX = "\u2014 "  # an em dash and a space
_NAME = re.compile(r"^[^\s+]+$")


class CheckpointError(ValueError):
    """A checkpoint that is malformed, unsigned by a known key, or signed wrongly."""


class CheckpointKeyError(ValueError):
    """AUDIT_CHECKPOINT_KEY (or the file it names) is not a usable Ed25519 key."""


# ---------------------------------------------------------------------------- keys
def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class VerifierKey:
    """A public checkpoint key under a name (the log's origin)."""

    name: str
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        material = self.name.encode() + b"\n" + _ED25519 + _raw_public(self.public_key)
        return hashlib.sha256(material).digest()[:4]

    def vkey(self) -> str:
        raw = base64.b64encode(_ED25519 + _raw_public(self.public_key)).decode()
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        try:
            name, key_id, raw_b64 = text.strip().split("+", 2)
            raw = base64.b64decode(raw_b64, validate=True)
        except (ValueError, binascii.Error):
            raise CheckpointError("a verifier key is <name>+<key id hex>+<base64 key>") from None
        if len(raw) != 33 or raw[:1] != _ED25519 or not _NAME.match(name):
            raise CheckpointError("not an Ed25519 verifier key")
        key = cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
        if key.key_id.hex() != key_id.lower():
            raise CheckpointError("the verifier key's id does not match its key")
        return key


@dataclass(frozen=True)
class SignerKey:
    name: str
    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> VerifierKey:
        return VerifierKey(self.name, self.private_key.public_key())


def _parse_seed(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise CheckpointKeyError(f"the checkpoint key PEM does not load: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointKeyError("the checkpoint key must be an Ed25519 key")
        return key
    try:
        seed = base64.b64decode(text, validate=True)
    except binascii.Error:
        seed = b""
    if len(seed) != 32:
        raise CheckpointKeyError(
            "AUDIT_CHECKPOINT_KEY must be base64 of a 32-byte Ed25519 seed (or a PEM, or the "
            "path of a file holding either)"
        )
    return Ed25519PrivateKey.from_private_bytes(seed)


def new_key_text() -> str:
    """A fresh key in the setting's form (base64 of the 32-byte seed): a secret."""
    seed = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(seed).decode()


def checkpoint_key_path(settings: Settings) -> Path | None:
    """The file holding the checkpoint keys (what `keys rotate checkpoint-signing` appends to),
    or None when AUDIT_CHECKPOINT_KEY holds the key itself."""
    value = (settings.audit_checkpoint_key or "").strip()
    if value and not _looks_like_path(value):
        return None
    if value:
        return Path(value).expanduser()
    if settings.is_production:
        raise InsecureSettings(
            "AUDIT_CHECKPOINT_KEY must hold the audit checkpoint signing key (or name its file) "
            "when CONSENT_SERVICE_ENV=production; make one with `consent-service audit new-key`."
        )
    return settings.home / DEV_KEY_FILE


def load_signers(settings: Settings) -> list[SignerKey]:
    """Every checkpoint signing key, oldest first; the newest signs, all verify. The setting
    AUDIT_CHECKPOINT_KEY holds one key, or names a file of keys (one per line, or one PEM); in
    development only, a key generated once into the home folder. Production refuses to go on
    without one."""
    value = (settings.audit_checkpoint_key or "").strip()
    path = checkpoint_key_path(settings)
    if path is None:
        return [SignerKey(settings.audit_origin, _parse_seed(value))]
    if not value:
        write_new_key_file(path, new_key_text() + "\n")
    try:
        text = path.read_text()
    except OSError as exc:
        raise CheckpointKeyError(f"Cannot read the checkpoint key at {path}: {exc}") from None
    signers = _signers_in(text, path, settings.audit_origin)
    public = verifiers_file_for(path)
    if not value and not public.exists():  # the development key's verifier, once
        save_verifiers(public, [s.verifier for s in signers])
    return signers


def _signers_in(text: str, path: Path, origin: str) -> list[SignerKey]:
    if text.lstrip().startswith("-----BEGIN"):
        return [SignerKey(origin, _parse_seed(text))]
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise CheckpointKeyError(f"The checkpoint key file {path} holds no key")
    return [SignerKey(origin, _parse_seed(line)) for line in lines]


def load_signer(settings: Settings) -> SignerKey:
    """The checkpoint key that signs now: the newest of `load_signers`."""
    return load_signers(settings)[-1]


def add_checkpoint_key(path: Path, origin: str) -> SignerKey:
    """Rotation: append a new key to the key file (replaced atomically, owner-only); the older
    keys stay in it, so the checkpoints they signed keep verifying. The verifier file beside it
    is rewritten first, so the new key is published before it signs. Returns the new key."""
    text = path.read_text() if path.exists() else ""
    if text.lstrip().startswith("-----BEGIN"):
        raise CheckpointKeyError(
            f"{path} holds a PEM key: write it as base64 of its seed first to add keys beside it"
        )
    fresh = new_key_text()
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    signers = [SignerKey(origin, _parse_seed(line)) for line in [*kept, fresh]]
    save_verifiers(verifiers_file_for(path), [s.verifier for s in signers])
    _replace(path, "\n".join([*kept, fresh]) + "\n", 0o600)
    return signers[-1]


# ---------------------------------------------------------------------------- public keys
def verifiers_file_for(private: Path) -> Path:
    """Where the verifier keys of the key file `private` are kept: beside it, `<name>.pub`."""
    return private.with_name(private.name + PUBLIC_FILE_SUFFIX)


def parse_verifiers(text: str, source: str) -> list[VerifierKey]:
    """Verifier keys, one per line (or separated by spaces), oldest first."""
    try:
        keys = [VerifierKey.parse(word) for word in text.split()]
    except CheckpointError as exc:
        raise CheckpointKeyError(f"{source}: {exc}") from None
    if not keys:
        raise CheckpointKeyError(f"{source} holds no checkpoint verifier key")
    return keys


def _inline_verifiers(value: str) -> bool:
    """Verifier keys given in the setting itself (else it names a file)."""
    try:
        parse_verifiers(value, "AUDIT_CHECKPOINT_PUBLIC_KEYS")
    except CheckpointKeyError:
        return False
    return True


def verifiers_path(settings: Settings) -> Path | None:
    """The file holding the checkpoint verifier keys (re-read when it changes), or None when
    they are inline in AUDIT_CHECKPOINT_PUBLIC_KEYS or cannot be found (the signing key inline,
    or none in production, and no setting)."""
    value = (settings.audit_checkpoint_public_keys or "").strip()
    if value:
        return None if _inline_verifiers(value) else Path(value).expanduser()
    private = (settings.audit_checkpoint_key or "").strip()
    if (private and not _looks_like_path(private)) or (not private and settings.is_production):
        return None
    path = checkpoint_key_path(settings)
    return verifiers_file_for(path) if path is not None else None


def load_verifiers(settings: Settings) -> list[VerifierKey]:
    """Every checkpoint verifier key, oldest first (the last signs now): what the web publishes.
    Never reads a signing key, except in development, where a missing key is generated (with
    its verifier file) by `load_signers`."""
    value = (settings.audit_checkpoint_public_keys or "").strip()
    if value and _inline_verifiers(value):
        return parse_verifiers(value, "AUDIT_CHECKPOINT_PUBLIC_KEYS")
    path = verifiers_path(settings)
    if path is None:
        raise InsecureSettings(
            "AUDIT_CHECKPOINT_PUBLIC_KEYS must hold the audit checkpoint verifier keys or name "
            "their file (by default the .pub file beside AUDIT_CHECKPOINT_KEY's key file); "
            "`consent-service audit public-key` prints them."
        )
    if not value and not path.exists() and not settings.is_production:
        load_signers(settings)  # development: generate the key (or its missing verifier file)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CheckpointKeyError(
            f"Cannot read the checkpoint verifier keys at {path}: {exc} (`consent-service audit "
            "public-key` writes them beside the key file)"
        ) from None
    return parse_verifiers(text, str(path))


def save_verifiers(path: Path, keys: list[VerifierKey]) -> None:
    """Replace the verifier file atomically, world-readable (the web's, not a secret)."""
    _replace(path, "".join(k.vkey() + "\n" for k in keys), 0o644)


def _replace(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), mode)  # exactly `mode`, whatever the umask
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _looks_like_path(value: str) -> bool:
    """A key given inline is a PEM or base64 of 32 bytes; anything else names a file."""
    if value.startswith("-----BEGIN"):
        return False
    try:
        return len(base64.b64decode(value, validate=True)) != 32
    except binascii.Error:
        return True


# ---------------------------------------------------------------------------- checkpoints
@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    timestamp: int  # unix seconds

    @property
    def root_b64(self) -> str:
        return base64.b64encode(self.root).decode()

    @staticmethod
    def root_from_b64(text: str) -> bytes:
        try:
            root = base64.b64decode(text, validate=True)
        except binascii.Error:
            root = b""
        if len(root) != 32:
            raise CheckpointError("a root is base64 of 32 bytes")
        return root

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, UTC)

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{self.root_b64}\ntimestamp {self.timestamp}\n"

    def sign(self, key: SignerKey) -> str:
        """The signed note."""
        if key.name != self.origin:
            raise CheckpointError("a checkpoint is signed under its log's origin")
        body = self.text()
        signature = key.private_key.sign(body.encode())
        encoded = base64.b64encode(key.verifier.key_id + signature).decode()
        return f"{body}\n{_SIG_PREFIX}{key.name} {encoded}\n"

    def claim(self) -> dict[str, int | str]:
        return {"size": self.size, "root": self.root_b64}


def parse_note(note: str, keys: list[VerifierKey]) -> Checkpoint:
    """The checkpoint in a signed note, once a signature by one of `keys` verifies over it."""
    body, sep, signatures = note.partition("\n\n")
    if not sep:
        raise CheckpointError("not a signed note: no blank line before the signatures")
    body += "\n"
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise CheckpointError("a checkpoint has an origin, a size and a root")
    origin, size_text, root_text, *extensions = lines
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise CheckpointError("the checkpoint's size is not a decimal number")
    root = Checkpoint.root_from_b64(root_text)
    stamps = [e.split(" ", 1)[1] for e in extensions if e.startswith("timestamp ")]
    if len(stamps) != 1 or not stamps[0].isdigit():
        raise CheckpointError("the checkpoint has no timestamp line")
    checkpoint = Checkpoint(origin, int(size_text), root, int(stamps[0]))
    for line in signatures.splitlines():
        if not line.startswith(_SIG_PREFIX):
            if line.strip():
                raise CheckpointError("a signature line starts with an em dash")
            continue
        try:
            name, encoded = line[len(_SIG_PREFIX) :].split(" ")
            raw = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise CheckpointError("a signature line is `— <name> <base64>`") from None
        for key in keys:
            if key.name == name == origin and raw[:4] == key.key_id:
                try:
                    key.public_key.verify(raw[4:], body.encode())
                except InvalidSignature:
                    raise CheckpointError("the checkpoint's signature does not verify") from None
                return checkpoint
    raise CheckpointError("the checkpoint is not signed by a known checkpoint key")


def split_notes(text: str) -> list[str]:
    """The signed notes in a text of several (the checkpoint file, a witness's collection): each
    ends after its signature lines."""
    notes: list[str] = []
    current: list[str] = []
    in_signatures = False
    for line in text.splitlines(keepends=True):
        if in_signatures and not line.startswith(_SIG_PREFIX):
            notes.append("".join(current))
            current, in_signatures = [], False
        if not line.strip() and not current:
            continue
        current.append(line)
        if line == "\n":
            in_signatures = True
    if current:
        notes.append("".join(current))
    return notes


def append_to_file(path: Path, note: str) -> None:
    """Append one signed note to the checkpoint file (one write, so appenders do not interleave)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, note.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
