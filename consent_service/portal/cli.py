"""`consent-service providers add-staff`: a provider's staff for the portal (registered in the
`providers` group by consent_service.cli)."""

from __future__ import annotations

import click

from consent_service.accounts import service as accounts
from consent_service.cli_support import unit_of_work
from consent_service.portal.service import add_staff
from consent_service.providers.service import find_provider
from consent_service.runtime import services
from consent_service.web import account_mail


@click.command("add-staff")
@click.argument("name")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="admin", show_default=True)
def providers_add_staff(name: str, email: str, role: str) -> None:
    """Invite an address to the provider's portal at /portal: a mailed link sets a new account's
    password, or lets an existing account's owner accept (signed in, address verified)."""
    with unit_of_work() as s:
        added = add_staff(s, services().audit_key, find_provider(s, name), email, role)
        if added.invitation is not None:
            token = accounts.invitation_link(services().secrets["secret_key"], added.invitation)
            account_mail.invitation(
                s, added.user, token, added.invitation.new_account, provider=name
            )
    if added.invitation is None:
        click.echo(f"{added.user.email} is {role} of {name}")
    else:
        click.echo(
            f"{added.user.email} is invited to be {role} of {name}: the invitation is mailed"
        )
