"""`consent-service webhooks`: providers' webhooks, set by an operator, and their deliveries."""

from __future__ import annotations

import json
from datetime import datetime

import click

from consent_service.cli_support import unit_of_work
from consent_service.providers.service import find_provider
from consent_service.runtime import services
from consent_service.webhooks import service


@click.group()
def webhooks() -> None:
    """Providers' webhooks (providers can also use PUT /api/v1/webhook)."""


@webhooks.command("set")
@click.option("--provider", "provider_name", required=True)
@click.option("--url", required=True)
@click.option("--events", default=None, help="Comma-separated; all events when omitted.")
@click.option("--active/--inactive", default=True, show_default=True)
@click.option("--rotate-secret", is_flag=True, help="Issue a new signing secret.")
def webhooks_set(provider_name, url, events, active, rotate_secret) -> None:
    """Configure a provider's webhook; a new secret is printed alone on the last line."""
    with unit_of_work() as s:
        svc = services()
        webhook, secret = service.configure(
            s,
            svc.envelope,
            find_provider(s, provider_name),
            url,
            events=events.split(",") if events is not None else None,
            active=active,
            rotate_secret=rotate_secret,
            allow_private=not svc.settings.is_production,
        )
    state = "active" if webhook.active else "inactive"
    click.echo(f"webhook of {provider_name}: {webhook.url} ({state}; {', '.join(webhook.events)})")
    if secret is None:
        click.echo("signing secret unchanged (use --rotate-secret for a new one)")
    else:
        click.echo("signing secret (store it now, it is not shown again):")
        click.echo(secret)


@webhooks.command("deliveries")
@click.option("--provider", "provider_name", required=True)
@click.option("--limit", default=20, show_default=True, type=int)
def webhooks_deliveries(provider_name: str, limit: int) -> None:
    """The provider's latest deliveries, newest first, as JSON."""
    with unit_of_work() as s:
        provider = find_provider(s, provider_name)
        rows = [
            service.delivery_view(d).model_dump()
            for d in service.list_deliveries(s, provider, limit)
        ]
    # Times as Python writes them (`+00:00`), as this command always has.
    click.echo(json.dumps(rows, indent=2, default=datetime.isoformat))
