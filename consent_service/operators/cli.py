"""`consent-service operators`: operator accounts (the console at /operator)."""

from __future__ import annotations

import click

from consent_service.cli_support import unit_of_work
from consent_service.operators.service import add_operator
from consent_service.runtime import services


@click.group()
def operators() -> None:
    """Operator accounts (the console at /operator)."""


@operators.command("add")
@click.argument("email")
def operators_add(email: str) -> None:
    """Make an account an operator, creating it (random password: reset it) if missing."""
    with unit_of_work() as s:
        user, created = add_operator(s, services().audit_key, email)
    click.echo(f"{user.email} is an operator{' (new account)' if created else ''}")
