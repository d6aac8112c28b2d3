"""`consent-service tokens`: decision-signing keys (the configured key set, no database) and
decision tokens."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import click
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent_service.errors import TokenInvalid
from consent_service.settings import InsecureSettings, Settings
from consent_service.tokens import service
from consent_service.tokens.service import KeyRing


@click.group()
def tokens() -> None:
    """Decision-signing keys and decision tokens."""


def _key_file_update(change: Callable[[KeyRing | None], KeyRing]) -> None:
    """Apply `change` (KeyRing → KeyRing) to the configured key set: the key file is rewritten;
    an inline DECISION_SIGNING_KEYS (or none, in production) gets the new set printed."""
    settings = Settings()
    path = service.configured_keys_path(settings)
    try:
        if path is not None and (path.exists() or not settings.is_production):
            ring = service.load_keyring(settings)
        elif (settings.decision_signing_keys or "").strip():
            ring = service.parse_keyring(settings.decision_signing_keys or "")
        else:
            ring = None
        new = change(ring)
    except service.KeyConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if path is not None:
        service.save_keyring(path, new)
        click.echo(
            f"decision keys written to {path}, their public half to "
            f"{service.public_file_for(path)} (the web's); running processes read them again"
        )
    else:
        click.echo(new.to_json(indent=None))
        click.echo(new.public().to_json(indent=None))
        click.echo(
            "set DECISION_SIGNING_KEYS (workers; a secret) to the first line and "
            "DECISION_PUBLIC_KEYS (the web) to the second",
            err=True,
        )


@tokens.command("rotate")
@click.option(
    "--activate-in",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seconds before the new key signs; it is published at once.",
)
def tokens_rotate(activate_in: int) -> None:
    """Add a new signing key; older keys stay published so their tokens keep verifying."""

    def change(ring: KeyRing | None) -> KeyRing:
        if ring is None:
            return service.KeyRing((service.generate_key(),))
        return service.rotate(ring, activate_in)

    _key_file_update(change)


@tokens.command("retire")
@click.argument("kid")
@click.option("--remove", is_flag=True, help="Unpublish it too (once its tokens have expired).")
def tokens_retire(kid: str, remove: bool) -> None:
    """Stop a key signing (it stays published), or remove it."""

    def change(ring: KeyRing | None) -> KeyRing:
        if ring is None:
            raise service.KeyConfigError("There are no decision keys yet.")
        return service.retire(ring, kid, remove)

    _key_file_update(change)


@tokens.command("public-keys")
@click.option(
    "--write",
    is_flag=True,
    help="Also write them beside the key file (`<name>.public.json`), where the web reads them.",
)
def tokens_public_keys(write: bool) -> None:
    """Print the public half of the decision keys (a JWK Set, for DECISION_PUBLIC_KEYS)."""
    settings = Settings()
    try:
        ring = service.load_keyring(settings)
        public = ring.public()
        path = service.configured_keys_path(settings)
        if write and path is None:
            raise service.KeyConfigError(
                "DECISION_SIGNING_KEYS holds the keys inline: set DECISION_PUBLIC_KEYS to the "
                "JSON printed instead"
            )
        if write and path is not None:
            service.save_public_keys(service.public_file_for(path), public)
            click.echo(f"written to {service.public_file_for(path)}", err=True)
    except (service.KeyConfigError, InsecureSettings, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(public.to_json(indent=None))


def verifying_keys(url: str | None) -> dict[str, Ed25519PublicKey]:
    """The public keys to check what the service signed with: the JWKS of the server at `url`,
    else the local public key set (the web's file; the private set where that is all there is).
    Exits with a clear message when neither can be had."""
    try:
        if url:
            answer = requests.get(url.rstrip("/") + "/.well-known/jwks.json", timeout=10)
            answer.raise_for_status()
            return service.keys_from_jwks(answer.json())
        settings = Settings()
        files = (service.public_keys_path(settings), service.configured_keys_path(settings))
        given = settings.decision_public_keys or settings.decision_signing_keys
        if not (given or "").strip() and not any(p is not None and p.exists() for p in files):
            raise click.ClickException("No local decision keys; pass --url SERVER.")
        return service.load_public_keys(settings).public_keys()
    except (requests.RequestException, ValueError, InsecureSettings) as exc:
        raise click.ClickException(f"Cannot get the keys: {exc}") from None


@tokens.command("verify")
@click.argument("token")
@click.option("--url", default=None, help="Verify against this server's JWKS, not local keys.")
@click.option("--audience", default=None, help="Require this provider id as `aud`.")
@click.option("--issuer", default=None, help="Require this `iss`.")
@click.option(
    "--accept-expired",
    is_flag=True,
    help="Check a token past its `exp` too (tokens are short-lived; its decision's status is "
    "at the server's /api/v1/decisions/<jti>/status).",
)
def tokens_verify(
    token: str, url: str | None, audience: str | None, issuer: str | None, accept_expired: bool
) -> None:
    """Check a decision token (`-` reads it from stdin) and print its claims; exit 1 if invalid."""
    if token == "-":  # noqa: S105 - "-" means stdin; not a password
        token = sys.stdin.read().strip()
    keys = verifying_keys(url)
    try:
        claims, kid = service.verify_token(
            token, keys, audience=audience, issuer=issuer, allow_expired=accept_expired
        )
    except TokenInvalid as exc:
        click.echo(f"invalid: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps({"valid": True, "kid": kid, "claims": claims}, indent=2))
