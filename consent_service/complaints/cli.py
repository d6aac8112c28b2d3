"""`consent-service complaints`: the operators' queue with its clocks, for a terminal or a cron
job that alerts on overdue complaints (exit status 1 with `--overdue` when any is)."""

from __future__ import annotations

import sys

import click

from consent_service.cli_support import unit_of_work
from consent_service.complaints import service
from consent_service.timeutil import as_utc, utcnow


@click.group()
def complaints_group() -> None:
    """Complaints (filed at /complaints/new) and their published time limits."""


@complaints_group.command("list")
@click.option("--overdue", is_flag=True, help="Only those past a limit; exit 1 if any.")
@click.option("--all", "everything", is_flag=True, help="Resolved ones too.")
def complaints_list(overdue: bool, everything: bool) -> None:
    """Print the queue: reference, status, acknowledge-by and resolve-by with their clocks."""
    now = utcnow()
    late = (service.Clock.OVERDUE,)
    with unit_of_work() as s:
        rows = [
            (c, service.ack_clock(c, now), service.resolve_clock(c, now))
            for c in service.queue(s, include_resolved=everything)
        ]
    if overdue:
        rows = [r for r in rows if r[1] in late or r[2] in late]
    for c, ack, resolve in rows:
        click.echo(
            f"{c.reference}  {c.status:<17} "
            f"ack {as_utc(c.ack_due_at):%Y-%m-%d %H:%M} {ack:<7} "
            f"resolve {as_utc(c.resolve_due_at):%Y-%m-%d %H:%M} {resolve:<7} {c.kind}"
        )
    if overdue and rows:
        sys.exit(1)
