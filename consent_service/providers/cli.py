"""`consent-service providers`: AI media providers and their API keys (list, issue with scopes
and an optional expiry, rotate with an overlap window, revoke; each audited)."""

from __future__ import annotations

from datetime import timedelta

import click

from consent_service.audit import service as audit
from consent_service.cli_support import unit_of_work
from consent_service.providers.models import ApiKey
from consent_service.providers.service import (
    create_provider,
    find_provider,
    issue_key,
    key_prefix,
    list_keys,
    revoke_key,
    rotate_key,
)
from consent_service.runtime import services
from consent_service.timeutil import utcnow
from consent_service.vocabulary import Scope

ACTOR = "operator:cli"
SCOPES = [s.value for s in Scope]


@click.group()
def providers() -> None:
    """AI media providers and their API keys."""


@providers.command("create")
@click.argument("name")
def providers_create(name: str) -> None:
    """Register a provider and print its first API key, allowed every scope (on the last line,
    shown once)."""
    with unit_of_work() as s:
        provider = create_provider(s, name)
        key = issue_key(s, provider, "created by CLI")
    click.echo(f"provider {name} ({provider.id}); API key (store it now, it is not shown again):")
    click.echo(key)


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _describe(key: ApiKey) -> str:
    state = "revoked" if key.revoked_at else f"expires {_when(key.expires_at)}"
    return (
        f"cs_{key.prefix}_…  {key.name or '-'}  scopes={','.join(key.scopes)}  "
        f"created {_when(key.created_at)}  {state}  last used {_when(key.last_used_at)}"
    )


@providers.command("keys")
@click.argument("name")
def providers_keys(name: str) -> None:
    """List the provider's API keys, newest first: prefix, name, scopes, expiry, last use (to
    the hour, UTC)."""
    with unit_of_work() as s:
        lines = [_describe(k) for k in list_keys(s, find_provider(s, name))]
    click.echo("\n".join(lines) if lines else f"{name} has no API key")


@providers.command("issue-key")
@click.argument("name")
@click.option("--key-name", default="", help="What uses the key, e.g. 'render farm eu-1'.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    help="A scope the key is allowed (repeat for more); every scope when none is given.",
)
@click.option(
    "--expires-in-days", type=click.IntRange(1, 3650), help="Expire the key after this long."
)
def providers_issue_key(
    name: str, key_name: str, scopes: tuple[str, ...], expires_in_days: int | None
) -> None:
    """Issue an API key for the provider and print it (on the last line, shown once)."""
    chosen = [Scope(v) for v in scopes] or list(Scope)
    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    with unit_of_work() as s:
        provider = find_provider(s, name)
        raw = issue_key(s, provider, key_name, chosen, expires)
        audit.append(
            s,
            services().audit_key,
            "provider.key_issued",
            ACTOR,
            {
                "provider_id": provider.id,
                "prefix": key_prefix(raw),
                "name": key_name,
                "scopes": sorted(c.value for c in chosen),
                "expires_at": expires.isoformat() if expires else None,
            },
        )
    click.echo(f"API key cs_{key_prefix(raw)}_… (store it now, it is not shown again):")
    click.echo(raw)


@providers.command("rotate-key")
@click.argument("name")
@click.argument("prefix")
@click.option(
    "--overlap-hours",
    type=click.IntRange(0, 720),
    help="How long the old key keeps working [default: API_KEY_ROTATION_OVERLAP_HOURS].",
)
def providers_rotate_key(name: str, prefix: str, overlap_hours: int | None) -> None:
    """Issue a successor to key PREFIX with the same name and scopes, and let the old key work
    on for the overlap; prints the new key (on the last line, shown once)."""
    with unit_of_work() as s:
        svc = services()
        hours = (
            svc.settings.api_key_rotation_overlap_hours if overlap_hours is None else overlap_hours
        )
        provider = find_provider(s, name)
        rotation = rotate_key(s, provider, prefix, timedelta(hours=hours))
        audit.append(
            s,
            svc.audit_key,
            "provider.key_rotated",
            ACTOR,
            {
                "provider_id": provider.id,
                "prefix": prefix,
                "new_prefix": rotation.new_prefix,
                "old_expires_at": _when(rotation.old.expires_at),
            },
        )
    click.echo(
        f"cs_{prefix}_… works until {_when(rotation.old.expires_at)} UTC; its successor "
        f"cs_{rotation.new_prefix}_… (store it now, it is not shown again):"
    )
    click.echo(rotation.raw)


@providers.command("revoke-key")
@click.argument("name")
@click.argument("prefix")
def providers_revoke_key(name: str, prefix: str) -> None:
    """Revoke key PREFIX now: the API refuses it from the next request on."""
    with unit_of_work() as s:
        provider = find_provider(s, name)
        revoke_key(s, provider, prefix)
        audit.append(
            s,
            services().audit_key,
            "provider.key_revoked",
            ACTOR,
            {"provider_id": provider.id, "prefix": prefix},
        )
    click.echo(f"cs_{prefix}_… is revoked")
