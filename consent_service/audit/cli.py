"""`consent-service audit`: check the hash-chained audit log."""

from __future__ import annotations

import sys

import click

from consent_service.audit.service import verify
from consent_service.cli_support import unit_of_work
from consent_service.runtime import services


@click.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
def audit_verify() -> None:
    """Walk the whole chain; exit 1 naming the first bad entry."""
    with unit_of_work() as s:
        report = verify(s, services().audit_key)
    if report.ok:
        click.echo(f"audit chain intact: {report.checked} entries")
        return
    click.echo(
        f"audit chain broken at seq {report.first_bad_seq}: {report.problem} "
        f"({report.checked} entries verified before it)",
        err=True,
    )
    sys.exit(1)
