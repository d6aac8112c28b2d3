"""`consent-service providers add-staff`: a provider's staff for the portal (registered in the
`providers` group by consent_service.cli)."""

from __future__ import annotations

import click

from consent_service.cli_support import unit_of_work
from consent_service.portal.service import add_staff
from consent_service.providers.service import find_provider
from consent_service.runtime import services


@click.command("add-staff")
@click.argument("name")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="admin", show_default=True)
@click.option(
    "--password",
    default=None,
    help="For a new account; without it a password is generated and printed once.",
)
def providers_add_staff(name: str, email: str, role: str, password: str | None) -> None:
    """Give an account (created if needed) access to the provider's portal at /portal."""
    with unit_of_work() as s:
        added = add_staff(s, services().audit_key, find_provider(s, name), email, role, password)
    click.echo(f"{added.user.email} is {role} of {name}: sign in at /login, then open /portal")
    if added.password is not None:
        click.echo("password (shown once; store it now):")
        click.echo(added.password)
