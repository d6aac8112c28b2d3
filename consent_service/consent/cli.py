"""`consent-service grants`: consent grants recorded by an operator (bulk work and tests);
`consent-service purposes`: the purpose vocabulary the operator maintains."""

from __future__ import annotations

from datetime import UTC, datetime
from datetime import time as dtime

import click
from sqlmodel import Session

from consent_service.accounts import service as accounts
from consent_service.cli_support import unit_of_work
from consent_service.consent import purposes as vocabulary
from consent_service.consent import service
from consent_service.providers.service import find_provider
from consent_service.rows import row_id
from consent_service.runtime import services
from consent_service.vocabulary import Operation, Role

OPERATOR_CLI = service.Evidence(actor="operator:cli", identity_method="operator-cli")


@click.group()
def grants() -> None:
    """Consent grants (for bulk work and tests; people use the web pages)."""


def _subject_id(s: Session, email: str) -> int:
    user = accounts.find_user(s, email)
    if user is None:
        raise click.ClickException(f"no account for {email}")
    return row_id(accounts.subject_of(s, user))


def _operation(value: str) -> Operation:
    try:
        return Operation(value)
    except ValueError:
        raise click.BadParameter(f"use one of {', '.join(o.value for o in Operation)}") from None


@grants.command("add")
@click.option("--email", required=True)
@click.option("--operation", "operations", required=True, multiple=True)
@click.option("--roles", default="source,target", show_default=True)
@click.option(
    "--providers",
    "provider_names",
    default="all",
    show_default=True,
    help="all, or provider names separated by commas",
)
@click.option("--until", default=None, help="YYYY-MM-DD, last day the grant holds (UTC)")
@click.option("--purpose", default="", help="the purpose in words (free text)")
@click.option(
    "--purposes",
    "purpose_codes",
    default="",
    help="purpose codes the grant covers, separated by commas (default: every purpose)",
)
def grants_add(email, operations, roles, provider_names, until, purpose, purpose_codes) -> None:
    """Record a grant on the person's behalf (evidence says it came from the operator CLI)."""
    try:
        role_list = [Role(r.strip()) for r in roles.split(",") if r.strip()]
        valid_until = (
            datetime.combine(datetime.strptime(until, "%Y-%m-%d").date(), dtime.max, tzinfo=UTC)
            if until
            else None
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    with unit_of_work() as s:
        all_providers = provider_names.strip().lower() == "all"
        ids = (
            []
            if all_providers
            else [find_provider(s, n.strip()).id for n in provider_names.split(",") if n.strip()]
        )
        row = service.grant(
            s,
            services().audit_key,
            _subject_id(s, email),
            service.GrantRequest(
                operations=[_operation(o) for o in operations],
                roles=role_list,
                all_providers=all_providers,
                provider_ids=ids,
                purpose=purpose,
                valid_until=valid_until,
                purposes=[c.strip() for c in purpose_codes.split(",") if c.strip()],
            ),
            OPERATOR_CLI,
        )
    click.echo(
        f"granted {','.join(row.operations)} ({','.join(row.roles)}) for {email}: "
        f"grant {row.grant_id}"
    )


@grants.command("revoke")
@click.option("--email", required=True)
@click.option("--operation", required=True)
def grants_revoke(email: str, operation: str) -> None:
    """Revoke every active grant of the person that covers the operation."""
    with unit_of_work() as s:
        subject_id = _subject_id(s, email)
        active = service.find_active(s, subject_id, _operation(operation))
        for g in active:
            service.revoke(s, services().audit_key, subject_id, g.grant_id, OPERATOR_CLI)
    click.echo(f"revoked {len(active)} grant(s) covering {operation} for {email}")


# ---------------------------------------------------------------------------- purposes
@click.group()
def purposes() -> None:
    """The purpose vocabulary: the codes a job states and a grant covers."""


@purposes.command("list")
@click.option("--all", "retired", is_flag=True, help="retired purposes too")
def purposes_list(retired: bool) -> None:
    """Code, state and labels of each purpose."""
    with unit_of_work() as s:
        rows = vocabulary.vocabulary(s, retired=retired)
        for p in rows:
            state = "active" if p.active else "retired"
            click.echo(f"{p.code}\t{state}\t{p.label_en}\t{p.label_zh}")


@purposes.command("add")
@click.argument("code")
@click.option("--label-en", required=True, help="the English label people and providers read")
@click.option("--label-zh", required=True, help="the Chinese label")
def purposes_add(code: str, label_en: str, label_zh: str) -> None:
    """Add a purpose (or bring a retired one back with these labels)."""
    with unit_of_work() as s:
        vocabulary.add(s, services().audit_key, code, label_en, label_zh, OPERATOR_CLI.actor)
    click.echo(f"purpose {code} is in force")


@purposes.command("retire")
@click.argument("code")
def purposes_retire(code: str) -> None:
    """Refuse the code for new jobs and grants; grants naming it keep covering it."""
    with unit_of_work() as s:
        vocabulary.retire(s, services().audit_key, code, OPERATOR_CLI.actor)
    click.echo(f"purpose {code} is retired")
