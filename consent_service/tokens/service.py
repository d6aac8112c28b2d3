"""Signed decisions: the Ed25519 key ring (rotation by `kid`), the decision token (a compact JWS,
EdDSA only) and its strict verification against our keys or a served JWKS document.

Two key sets: the private one (DECISION_SIGNING_KEYS) that workers sign with, and its public
half (DECISION_PUBLIC_KEYS, by default a file beside the private one, written with it) that the
web publishes and verifies with; the web never reads the private set."""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from jwt.algorithms import OKPAlgorithm

from consent_service.crypto import write_new_key_file
from consent_service.errors import TokenInvalid
from consent_service.settings import InsecureSettings, Settings
from consent_service.timeutil import new_id, utcnow

ALGORITHM = "EdDSA"
CURVE = "Ed25519"
MAX_TOKEN_LENGTH = 16384
# Headers that would let the token choose its own verification key (or add rules we do not
# know): a verifier must never follow them, so tokens carrying them are refused outright.
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp", "jti"]
# The JWS `typ` of a decision token. Other documents the same keys sign (consent receipts) carry a
# `typ` of their own, so one can never be taken for the other (RFC 8725 §3.11).
DECISION_TYP = "JWT"
DEV_KEYS_FILE = "decision-keys.json"
PUBLIC_FILE_SUFFIX = ".public.json"
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")


class KeyConfigError(ValueError):
    """DECISION_SIGNING_KEYS or DECISION_PUBLIC_KEYS (or the file either names) is not a usable
    Ed25519 key set."""


# ---------------------------------------------------------------------------- keys
@dataclass(frozen=True)
class DecisionKey:
    kid: str
    public_key: Ed25519PublicKey
    # None for a retired key: still published, so the tokens it signed keep verifying.
    private_key: Ed25519PrivateKey | None = None
    # Unix seconds: published at once, signing only from then on (a staged rotation).
    not_before: int | None = None

    def public_jwk(self) -> dict[str, Any]:
        jwk = OKPAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}

    def private_jwk(self) -> dict[str, Any]:
        """The form kept in configuration: the public JWK plus `d` and `nbf` when present."""
        jwk = self.public_jwk()
        if self.private_key is not None:
            jwk["d"] = OKPAlgorithm.to_jwk(self.private_key, as_dict=True)["d"]
        if self.not_before is not None:
            jwk["nbf"] = self.not_before
        return jwk


@dataclass(frozen=True)
class KeyRing:
    """Every decision key, oldest first. The newest key that has its private part and whose
    `nbf` has passed signs; all are published and verify."""

    keys: tuple[DecisionKey, ...]

    def signer(self, now: datetime) -> DecisionKey:
        moment = now.timestamp()
        for key in reversed(self.keys):
            if key.private_key is not None and (key.not_before or 0) <= moment:
                return key
        raise KeyConfigError("No decision key can sign now: every key is retired or not yet due.")

    def public(self) -> PublicKeySet:
        """The public halves of every key: what is published and verifies, nothing that signs."""
        return PublicKeySet(
            tuple(DecisionKey(k.kid, k.public_key, None, k.not_before) for k in self.keys)
        )

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return self.public().public_keys()

    def jwks(self) -> dict[str, Any]:
        return self.public().jwks()

    def to_json(self, indent: int | None = 2) -> str:
        """The private key set, for the file or (one line) the setting; a secret: keep it so."""
        return json.dumps({"keys": [k.private_jwk() for k in self.keys]}, indent=indent)


@dataclass(frozen=True)
class PublicKeySet:
    """The public decision keys, oldest first: what the web publishes (JWKS) and verifies tokens
    with. It holds no private part, so nothing built from it can sign."""

    keys: tuple[DecisionKey, ...]

    def __post_init__(self) -> None:
        if any(k.private_key is not None for k in self.keys):
            raise KeyConfigError("A public key set holds no private part.")

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {k.kid: k.public_key for k in self.keys}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys]}

    def to_json(self, indent: int | None = 2) -> str:
        """The JWK Set, for the public file or (one line) DECISION_PUBLIC_KEYS; not a secret."""
        return json.dumps(self.jwks(), indent=indent)


def generate_key(not_before: int | None = None) -> DecisionKey:
    private = Ed25519PrivateKey.generate()
    kid = f"{utcnow():%Y%m%d}-{secrets.token_hex(4)}"
    return DecisionKey(kid, private.public_key(), private, not_before)


def _parse_keys(text: str, what: str) -> list[DecisionKey]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyConfigError(f"The {what} is not JSON: {exc}") from None
    entries = data.get("keys") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise KeyConfigError(f'The {what} must be {{"keys": [...]}} with at least one key.')
    keys = [_parse_key(entry) for entry in entries]
    kids = [k.kid for k in keys]
    if len(set(kids)) != len(kids):
        raise KeyConfigError("Two decision keys share a kid.")
    return keys


def parse_keyring(text: str) -> KeyRing:
    """A key set: `{"keys": [JWK, ...]}` or a bare list, oldest first. Each JWK is an Ed25519
    OKP key with a unique `kid`; `d` (private part) and `nbf` (unix seconds) are optional."""
    keys = _parse_keys(text, "decision key set")
    if all(k.private_key is None for k in keys):
        raise KeyConfigError("No decision key has its private part (`d`): nothing can sign.")
    return KeyRing(tuple(keys))


def parse_public_keys(text: str) -> PublicKeySet:
    """The public key set: a JWK Set (what `/.well-known/jwks.json` serves), oldest first. A key
    with a private part (`d`) is refused: that would be the private set, in the wrong place."""
    keys = _parse_keys(text, "decision public key set")
    private = [k.kid for k in keys if k.private_key is not None]
    if private:
        raise KeyConfigError(
            f"The decision public key set holds private keys ({', '.join(private)}): give it "
            "the public file (`consent-service tokens public-keys` prints one), never the "
            "private set."
        )
    return PublicKeySet(tuple(keys))


def _parse_key(entry: Any) -> DecisionKey:
    if not isinstance(entry, dict):
        raise KeyConfigError("Each decision key must be a JSON object (a JWK).")
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 64:
        raise KeyConfigError("Each decision key needs a `kid` of 1 to 64 characters.")
    if entry.get("kty") != "OKP" or entry.get("crv") != CURVE:
        raise KeyConfigError(f"Decision key {kid}: only Ed25519 (kty OKP, crv Ed25519) keys.")
    if entry.get("alg", ALGORITHM) != ALGORITHM:
        raise KeyConfigError(f"Decision key {kid}: alg must be {ALGORITHM}.")
    nbf = entry.get("nbf")
    if nbf is not None and (not isinstance(nbf, int) or isinstance(nbf, bool)):
        raise KeyConfigError(f"Decision key {kid}: nbf must be unix seconds.")
    fields = {k: entry[k] for k in ("kty", "crv", "x", "d") if k in entry}
    try:
        key = OKPAlgorithm.from_jwk(fields)
    except (jwt.InvalidKeyError, ValueError, TypeError, binascii.Error) as exc:
        raise KeyConfigError(f"Decision key {kid} is not a valid Ed25519 JWK: {exc}") from None
    if isinstance(key, Ed25519PrivateKey):
        public = key.public_key()
        given = OKPAlgorithm.to_jwk(public, as_dict=True)["x"]
        if "x" in entry and entry["x"] != given:
            raise KeyConfigError(f"Decision key {kid}: `x` is not the public half of `d`.")
        return DecisionKey(kid, public, key, nbf)
    if isinstance(key, Ed25519PublicKey):
        return DecisionKey(kid, key, None, nbf)
    raise KeyConfigError(f"Decision key {kid}: only Ed25519 keys.")


def configured_keys_path(settings: Settings) -> Path | None:
    """The file holding the key set (the one `tokens rotate` updates), or None when the key set
    is given inline in DECISION_SIGNING_KEYS."""
    value = (settings.decision_signing_keys or "").strip()
    if value:
        return None if value[0] in "{[" else Path(value).expanduser()
    return None if settings.is_production else settings.home / DEV_KEYS_FILE


def public_file_for(private: Path) -> Path:
    """Where the public half of the key file `private` is kept: beside it, `<name>.public.json`
    (`decision-keys.json` → `decision-keys.public.json`)."""
    stem = private.name.removesuffix(".json")
    return private.with_name(stem + PUBLIC_FILE_SUFFIX)


def public_keys_path(settings: Settings) -> Path | None:
    """The file holding the public key set (re-read when it changes), or None when it is given
    inline in DECISION_PUBLIC_KEYS or cannot be found (inline private keys and no setting)."""
    value = (settings.decision_public_keys or "").strip()
    if value:
        return None if value[0] in "{[" else Path(value).expanduser()
    private = configured_keys_path(settings)
    return public_file_for(private) if private is not None else None


def load_keyring(settings: Settings) -> KeyRing:
    """The keys in force, with their private parts (workers and the CLI only): DECISION_SIGNING_KEYS
    (inline JSON or a file path); in development only, a key generated once into the home folder
    (its public file beside it)."""
    value = (settings.decision_signing_keys or "").strip()
    if value and value[0] in "{[":
        return parse_keyring(value)
    path = configured_keys_path(settings)
    if path is None:
        raise InsecureSettings(
            "DECISION_SIGNING_KEYS must hold the decision signing keys (or name their file) "
            "when CONSENT_SERVICE_ENV=production; create them with `consent-service tokens rotate`."
        )
    if not value and not path.exists():
        write_new_key_file(path, KeyRing((generate_key(),)).to_json())
    try:
        text = path.read_text()
    except OSError as exc:
        raise KeyConfigError(f"Cannot read the decision keys at {path}: {exc}") from None
    ring = parse_keyring(text)
    public = public_file_for(path)
    if not value and not public.exists():  # the development key's public half, once
        save_public_keys(public, ring.public())
    return ring


def load_public_keys(settings: Settings) -> PublicKeySet:
    """The public keys the web publishes and verifies with: DECISION_PUBLIC_KEYS (inline JSON or
    a file path), else the public file beside DECISION_SIGNING_KEYS's file. Never reads a private
    key, except in development, where a missing pair is generated (`load_keyring`)."""
    value = (settings.decision_public_keys or "").strip()
    if value and value[0] in "{[":
        return parse_public_keys(value)
    path = public_keys_path(settings)
    if path is None:  # production without either setting, or the private keys inline
        raise InsecureSettings(
            "DECISION_PUBLIC_KEYS must hold the decision keys' public JWK Set or name its file "
            "(by default the .public.json file beside DECISION_SIGNING_KEYS's key file); "
            "`consent-service tokens public-keys` prints it."
        )
    if not value and not path.exists() and not settings.is_production:
        load_keyring(settings)  # development: generate the pair (or the missing public half)
    try:
        text = path.read_text()
    except OSError as exc:
        raise KeyConfigError(
            f"Cannot read the decision public keys at {path}: {exc} (`consent-service tokens "
            "public-keys` writes them beside the private key file)"
        ) from None
    return parse_public_keys(text)


def rotate(ring: KeyRing, activate_in: float = 0, now: datetime | None = None) -> KeyRing:
    """Add a new newest key. With `activate_in` > 0 it is published at once and signs only
    that many seconds later (at least: `nbf` is whole seconds, rounded up), so every process
    and every JWKS cache has it before any token it signs is seen."""
    moment = (now or utcnow()).timestamp()
    not_before = math.ceil(moment + activate_in) if activate_in > 0 else None
    return KeyRing((*ring.keys, generate_key(not_before)))


def retire(ring: KeyRing, kid: str, remove: bool = False) -> KeyRing:
    """Stop a key signing (drop its private part; it stays published so its tokens verify), or
    `remove` it altogether once every token it signed has expired."""
    if kid not in {k.kid for k in ring.keys}:
        raise KeyConfigError(f"No decision key {kid!r}.")
    kept = tuple(
        k if k.kid != kid else DecisionKey(k.kid, k.public_key, None, k.not_before)
        for k in ring.keys
        if not (remove and k.kid == kid)
    )
    if not any(k.private_key is not None for k in kept):
        raise KeyConfigError("That would leave no key that can sign; rotate first.")
    return KeyRing(kept)


def save_keyring(path: Path, ring: KeyRing) -> None:
    """Replace the key file atomically, owner-only, and its public file beside it (first: a new
    key is published before any process can sign with it)."""
    save_public_keys(public_file_for(path), ring.public())
    _replace(path, ring.to_json(), 0o600)


def save_public_keys(path: Path, keys: PublicKeySet) -> None:
    """Replace the public key file atomically, world-readable (the web's, not a secret)."""
    _replace(path, keys.to_json(), 0o644)


def _replace(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), mode)  # exactly `mode`, whatever the umask
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- signing
@dataclass(frozen=True)
class DecisionSigner:
    keys: KeyRing
    issuer: str
    ttl: timedelta

    def sign(self, claims: Mapping[str, Any], now: datetime) -> tuple[str, str]:
        """A token over `claims` (with iss, iat, exp and a fresh jti): (token, jti)."""
        key = self.keys.signer(now)
        assert key.private_key is not None  # signer() returns only a key with its private part
        jti = new_id()
        payload = {
            "iss": self.issuer,
            **claims,
            "iat": int(now.timestamp()),
            "exp": int((now + self.ttl).timestamp()),
            "jti": jti,
        }
        token = jwt.encode(
            payload,
            key.private_key,
            algorithm=ALGORITHM,
            headers={"kid": key.kid, "typ": DECISION_TYP},
        )
        return token, jti


def sign_document(
    payload: Mapping[str, Any], keys: KeyRing, typ: str, now: datetime
) -> tuple[str, str]:
    """A compact JWS (EdDSA) of `payload` as it is, under the key that signs at `now` and with
    the JWS `typ` given (never the decision tokens'): (token, kid)."""
    if typ == DECISION_TYP:
        raise ValueError("Only decision tokens are signed with the decision tokens' typ.")
    key = keys.signer(now)
    assert key.private_key is not None  # signer() returns only a key with its private part
    token = jwt.encode(
        dict(payload), key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": typ}
    )
    return token, key.kid


def decision_claims(
    *,
    job_id: str,
    provider_id: str,
    operation: str,
    decision: str,
    reasons: list[str],
    media: list[dict[str, Any]],
    findings: list[dict[str, Any]],
    assurance_required: str | None = None,
    purpose: str | None = None,
) -> dict[str, Any]:
    """What a decision token says. `media`: position, role, sha256 of each item; `findings`:
    media, role, outcome, subject_ref (pseudonymous), grant_id, grant_version and assurance
    (the named person's level) of each person; `assurance_required`: the provider's minimum
    for the operation (None: none); `purpose`: the purpose code the job stated (None: none),
    the one the grants were checked for. Nothing biometric, no names, no boxes."""
    return {
        "aud": provider_id,
        "sub": job_id,
        "decision": decision,
        "reasons": list(reasons),
        "operation": operation,
        "purpose": purpose,
        "assurance_required": assurance_required,
        "media": [
            {"position": m["position"], "role": m["role"], "sha256": m["sha256"]} for m in media
        ],
        "findings": [
            {
                k: f.get(k)
                for k in (
                    "media",
                    "role",
                    "outcome",
                    "subject_ref",
                    "grant_id",
                    "grant_version",
                    "assurance",
                )
            }
            for f in findings
        ],
    }


# ---------------------------------------------------------------------------- verifying
def keys_from_jwks(document: Any) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 keys of a JWKS document by kid (others are ignored: we never accept them)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeyConfigError('A JWKS document is {"keys": [...]}.')
    found: dict[str, Ed25519PublicKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") != "OKP" or entry.get("crv") != CURVE:
            continue
        public = {k: entry[k] for k in ("kty", "crv", "x", "kid") if k in entry}
        key = _parse_key(public)
        found[key.kid] = key.public_key
    return found


def _segment(part: str, name: str) -> bytes:
    # Only canonical base64url: lenient decoders ignore stray characters and the unused low
    # bits of the last character, which would let an altered token decode to the same bytes.
    if not _B64URL.match(part):
        raise TokenInvalid(f"The token's {name} is not base64url.")
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise TokenInvalid(f"The token's {name} is not base64url.") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != part:
        raise TokenInvalid(f"The token's {name} is not canonical base64url.")
    return raw


def _checked_header(
    token: Any, public_keys: Mapping[str, Ed25519PublicKey], typ: str, what: str
) -> str:
    """The kid of a compact JWS whose form and header we accept: canonical base64url, EdDSA, the
    `typ` expected, no header naming its own key or rules, a kid of ours. Else TokenInvalid."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
        raise TokenInvalid(f"{what} is a non-empty compact JWS string.")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenInvalid(f"{what} has three dot-separated parts (compact JWS).")
    try:
        header = json.loads(_segment(parts[0], "header"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TokenInvalid("The token's header is not JSON.") from None
    if not isinstance(header, dict):
        raise TokenInvalid("The token's header is not a JSON object.")
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise TokenInvalid(f"Algorithm {alg!r} is not accepted; {_lower(what)} uses EdDSA only.")
    _segment(parts[1], "payload")
    if len(_segment(parts[2], "signature")) != 64:
        raise TokenInvalid("The token's signature is not an Ed25519 signature.")
    named = sorted(FORBIDDEN_HEADERS & set(header))
    if named:
        raise TokenInvalid(
            f"The token's header names its own key or rules ({', '.join(named)}); refused."
        )
    if header.get("typ") != typ:
        raise TokenInvalid(
            f"The token's type (typ) is {header.get('typ')!r}; {_lower(what)} has typ {typ!r}."
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in public_keys:
        raise TokenInvalid(f"Unknown key id {kid!r}: not in this service's key set.")
    return kid


def _lower(what: str) -> str:
    return what[:1].lower() + what[1:]


def verify_document(
    token: Any, public_keys: Mapping[str, Ed25519PublicKey], typ: str, what: str
) -> tuple[dict[str, Any], str]:
    """The payload and kid of a document signed by `sign_document` with `typ`; else
    TokenInvalid saying why (the checks of `verify_token` on the form and the header; an
    altered byte fails the signature). `what` names the document in the messages."""
    kid = _checked_header(token, public_keys, typ, what)
    try:
        payload = jwt.decode(
            token,
            public_keys[kid],
            algorithms=[ALGORITHM],
            options={"verify_exp": False, "verify_aud": False, "verify_iat": False},
        )
    except jwt.InvalidSignatureError:
        raise TokenInvalid(f"The signature does not verify: {_lower(what)} was altered.") from None
    except jwt.InvalidTokenError as exc:
        raise TokenInvalid(f"{what} is not valid: {exc}.") from None
    return payload, kid


def verify_token(
    token: Any,
    public_keys: Mapping[str, Ed25519PublicKey],
    *,
    audience: str | None = None,
    issuer: str | None = None,
    leeway: float = 0,
    allow_expired: bool = False,
) -> tuple[dict[str, Any], str]:
    """The claims and kid of a valid decision token; else TokenInvalid saying why.

    EdDSA with one of `public_keys` (chosen by `kid`) only; any other alg, a header naming a
    key or key URL, an unknown kid, an altered byte, an expired token (unless `allow_expired`:
    a token past its short life still proves what was decided, its status says whether that
    still stands), a missing registered claim or (when given) another audience or issuer is
    refused."""
    kid = _checked_header(token, public_keys, DECISION_TYP, "A decision token")
    try:
        claims = jwt.decode(
            token,
            public_keys[kid],
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={
                "require": REQUIRED_CLAIMS,
                "verify_aud": audience is not None,
                "verify_exp": not allow_expired,
            },
        )
    except jwt.ExpiredSignatureError:
        raise TokenInvalid("The token has expired.") from None
    except jwt.InvalidAudienceError:
        raise TokenInvalid("The token was issued to another audience (provider).") from None
    except jwt.InvalidIssuerError:
        raise TokenInvalid("The token was issued by another issuer.") from None
    except jwt.InvalidSignatureError:
        raise TokenInvalid("The signature does not verify: the token was altered.") from None
    except jwt.InvalidTokenError as exc:
        raise TokenInvalid(f"The token is not valid: {exc}.") from None
    return claims, kid
