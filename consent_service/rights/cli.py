"""`consent-service subjects export`: an access request answered by an operator (registered in
the `subjects` group by consent_service.cli); `consent-service receipts verify`: check a signed
consent receipt."""

from __future__ import annotations

import json
import sys

import click

from consent_service.accounts import service as accounts
from consent_service.cli_support import unit_of_work
from consent_service.consent.receipts import Controller
from consent_service.errors import TokenInvalid
from consent_service.rights import service as rights
from consent_service.rights.receipts import verify_receipt
from consent_service.runtime import services
from consent_service.tokens.cli import verifying_keys


@click.command("export")
@click.argument("email")
@click.option(
    "--base-url",
    default="http://127.0.0.1:5000/",
    show_default=True,
    help="The web address people manage consent at (named in the receipts).",
)
def subjects_export(email: str, base_url: str) -> None:
    """Print everything held about one person as JSON (an access request answered by an
    operator); the same export the person downloads from their dashboard."""
    with unit_of_work() as s:
        user = accounts.find_user(s, email)
        if user is None:
            raise click.ClickException(f"no account for {email}")
        body = rights.export(s, user, Controller.from_settings(services().settings), base_url)
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


@click.group()
def receipts() -> None:
    """Signed consent receipts."""


@receipts.command("verify")
@click.argument("file", type=click.File("r"))
@click.option("--url", default=None, help="Check against this server's JWKS, not local keys.")
def receipts_verify(file, url: str | None) -> None:
    """Check a signed consent receipt (FILE holds its JWS, `-` reads stdin) and print what it
    says; exit 1 if it is not a valid receipt of this service."""
    jws = file.read().strip()
    keys = verifying_keys(url)
    try:
        content, kid = verify_receipt(jws, keys)
    except TokenInvalid as exc:
        click.echo(f"invalid: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps({"valid": True, "kid": kid, "receipt": content}, indent=2))
