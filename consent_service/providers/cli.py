"""`consent-service providers`: AI media providers and their API keys."""

from __future__ import annotations

import click

from consent_service.cli_support import unit_of_work
from consent_service.providers.service import create_provider, issue_key


@click.group()
def providers() -> None:
    """AI media providers and their API keys."""


@providers.command("create")
@click.argument("name")
def providers_create(name: str) -> None:
    """Register a provider and print its first API key (on the last line, shown once)."""
    with unit_of_work() as s:
        provider = create_provider(s, name)
        key = issue_key(s, provider, "created by CLI")
    click.echo(f"provider {name} ({provider.id}); API key (store it now, it is not shown again):")
    click.echo(key)
