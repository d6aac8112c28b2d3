"""`consent-service subjects export`: an access request answered by an operator (registered in
the `subjects` group by consent_service.cli)."""

from __future__ import annotations

import json

import click

from consent_service.accounts import service as accounts
from consent_service.cli_support import unit_of_work
from consent_service.consent.receipts import Controller
from consent_service.rights import service as rights
from consent_service.runtime import services


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
