"""`consent-service retention`: what the retention schedule says is due, and purging it now."""

from __future__ import annotations

import click

from consent_service.cli_support import unit_of_work
from consent_service.retention import service as retention
from consent_service.retention.schedule import days_text, schedule
from consent_service.runtime import services
from consent_service.timeutil import utcnow


@click.group()
def retention_group() -> None:
    """The retention schedule (published at /retention) and its purges."""


@retention_group.command("report")
def retention_report() -> None:
    """Print every class of data, its period and how many items are past it now."""
    with unit_of_work() as s:
        settings = services().settings
        counts = retention.due(s, settings, utcnow())
    for c in schedule(settings):
        period = f"{days_text(c.period)} days" if c.period else "kept"
        if c.purged:
            state = f"{counts[c.key]} due"
        else:
            state = f"enforced by {c.enforced_by}" if c.enforced_by else "not purged"
        click.echo(f"{c.key:<16} {period:>12}  {state}")


@retention_group.command("purge")
def retention_purge() -> None:
    """Purge now every class past its period (as beat's `retention.purge` does), audited."""
    with unit_of_work() as s:
        svc = services()
        done = retention.purge(s, svc.audit_key, svc.settings, utcnow(), svc.evidence_store)
    for key, counts in done.items():
        extra = ", ".join(f"{k} {v}" for k, v in counts.items() if k != "count")
        click.echo(f"{key:<16} {counts['count']} purged" + (f" ({extra})" if extra else ""))
