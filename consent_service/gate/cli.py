"""`consent-service jobs`: gate jobs submitted as a provider does, through the HTTP API (a client:
no database, no app)."""

from __future__ import annotations

import json

import click

from consent_service.client import ApiError, ConsentClient


@click.group()
def jobs() -> None:
    """Gate jobs, as a provider submits them (through the HTTP API)."""


@jobs.command("submit")
@click.option("--api-key", envvar="CONSENT_SERVICE_API_KEY", required=True)
@click.option(
    "--url", envvar="CONSENT_SERVICE_URL", default="http://127.0.0.1:5000", show_default=True
)
@click.option("--operation", required=True)
@click.option("--source", multiple=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--target", multiple=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--purpose", default=None, help="a purpose code (consent-service purposes list)")
@click.option("--purpose-detail", default=None, help="the purpose in your words")
@click.option("--idempotency-key", default=None)
@click.option("--wait/--no-wait", default=False, help="Wait for the decision.")
@click.option("--timeout", default=300, show_default=True, type=int)
def jobs_submit(
    api_key, url, operation, source, target, purpose, purpose_detail, idempotency_key, wait, timeout
) -> None:
    """Submit media for a planned edit and print the job (with --wait, the decision) as JSON."""
    client = ConsentClient(url, api_key)
    try:
        job = client.gate(
            operation,
            source=list(source),
            target=list(target),
            wait=wait,
            idempotency_key=idempotency_key,
            timeout=timeout,
            purpose=purpose,
            purpose_detail=purpose_detail,
        )
    except ApiError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
    click.echo(json.dumps(job, indent=2))
