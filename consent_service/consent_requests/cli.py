"""`consent-service mail`: the mails the service wrote to its local outbox (no SMTP server)."""

from __future__ import annotations

import click

from consent_service.consent_requests.mail import read_outbox
from consent_service.settings import Settings


@click.group()
def mail() -> None:
    """Mail the service sends (consent-request links)."""


@mail.command("outbox")
@click.option("--full", is_flag=True, help="Print each mail's text too.")
def mail_outbox(full: bool) -> None:
    """The mails written to the local outbox (no SMTP_HOST configured), oldest first."""
    settings = Settings()
    mails = read_outbox(settings.mail_outbox_dir)
    if not mails:
        click.echo(f"No mail in {settings.mail_outbox_dir}.")
    for m in mails:
        click.echo(f"{m['date']}  to {m['to']}: {m['subject']}\n  {m['file']}")
        if full:
            click.echo(m["body"])
