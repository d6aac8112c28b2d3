"""`consent-service operators`: operator accounts (the console at /operator)."""

from __future__ import annotations

import click

from consent_service.accounts import service as accounts
from consent_service.cli_support import unit_of_work
from consent_service.operators.service import add_operator
from consent_service.runtime import services
from consent_service.web import account_mail


@click.group()
def operators() -> None:
    """Operator accounts (the console at /operator)."""


@operators.command("add")
@click.argument("email")
def operators_add(email: str) -> None:
    """Invite an address to be an operator: a mailed link sets a new account's password, or lets
    an existing account's owner accept (signed in, address verified). Operators sign in with a
    second factor, set up on their first sign-in."""
    with unit_of_work() as s:
        user, invitation = add_operator(s, services().audit_key, email)
        if invitation is not None:
            token = accounts.invitation_link(services().secrets["secret_key"], invitation)
            account_mail.invitation(s, user, token, invitation.new_account)
    if invitation is None:
        click.echo(f"{user.email} is an operator already")
    else:
        click.echo(f"{user.email} is invited to be an operator: the invitation is mailed")
