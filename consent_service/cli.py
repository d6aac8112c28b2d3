"""`consent-service`: run the service, and the operator's commands for bulk work and tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path

import click

from consent_service.settings import Settings


def _migrated_settings() -> Settings:
    """Settings in force, with the data folder present and the schema up to date."""
    from consent_service.migrate import upgrade

    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url)
    return settings


def _app():
    from consent_service import create_app

    return create_app(_migrated_settings())


def worker_command(concurrency: int = 1, extra: tuple[str, ...] = ()) -> list[str]:
    from workers import DEFAULT_QUEUE, MATCHING_QUEUE

    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "worker",
        "-Q",
        f"{MATCHING_QUEUE},{DEFAULT_QUEUE}",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        *extra,
    ]


@click.group()
def main() -> None:
    """Consent Service: who may edit whose face, checked before every edit."""


# ---------------------------------------------------------------------------- database
@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema up to date (Alembic migrations)."""
    settings = _migrated_settings()
    click.echo(f"database is up to date: {_redact(settings.sqlalchemy_url)}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ---------------------------------------------------------------------------- processes
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
def serve(host: str, port: int, threads: int) -> None:
    """Start the web app and a worker on the configured (default: embedded) database and broker."""
    from waitress import serve as waitress_serve

    app = _app()
    settings = app.extensions["consent_services"].settings
    worker = subprocess.Popen(worker_command())
    try:
        click.echo(f"Consent Service on http://{host}:{port}/ (data in {settings.home})")
        waitress_serve(app, host=host, port=port, threads=threads)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


@main.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    type=int,
    help="Worker processes; each holds its own face model (about 300 MB).",
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(concurrency: int, celery_args: tuple[str, ...]) -> None:
    """Start a Celery worker (extra arguments go to `celery worker`)."""
    _migrated_settings()
    cmd = worker_command(concurrency, celery_args)
    os.execv(cmd[0], cmd)  # noqa: S606 - replaces this process with the worker


# ---------------------------------------------------------------------------- providers
@main.group()
def providers() -> None:
    """AI media providers and their API keys."""


@providers.command("create")
@click.argument("name")
def providers_create(name: str) -> None:
    """Register a provider and print its first API key (on the last line, shown once)."""
    from consent_service import db as dbm
    from consent_service.providers.service import create_provider, issue_key

    app = _app()
    with app.app_context(), dbm.unit_of_work() as s:
        provider = create_provider(s, name)
        key = issue_key(s, provider, "created by CLI")
    click.echo(f"provider {name} ({provider.id}); API key (store it now, it is not shown again):")
    click.echo(key)


# ---------------------------------------------------------------------------- subjects
@main.group()
def subjects() -> None:
    """People whose faces are protected."""


@subjects.command("import")
@click.option("--email", required=True)
@click.option(
    "--face", "faces", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False)
)
@click.option("--password", default=None, help="For a new account; a random one if omitted.")
@click.option(
    "--timeout",
    default=300,
    show_default=True,
    type=int,
    help="Seconds to wait for the worker to make the templates.",
)
def subjects_import(email: str, faces: tuple[str, ...], password: str | None, timeout: int) -> None:
    """Create the account if needed, enroll the face photos and wait until templates exist."""
    from consent_service import db as dbm
    from consent_service.biometrics.service import import_face, wait_for_enrollment
    from consent_service.services import services
    from workers import publish

    app = _app()
    with app.app_context():
        svc = services()
        with dbm.unit_of_work() as s:
            enrollment, created = import_face(
                s,
                svc.media_store,
                email,
                [Path(f).read_bytes() for f in faces],
                svc.settings.enrollment_max_photos,
                password,
            )
        if created:
            click.echo(f"created account {email}")
        publish(app, "biometrics.enroll_face", enrollment.id)
        try:
            result = wait_for_enrollment(dbm.engine(), enrollment.id, timeout)
        except TimeoutError as exc:
            raise click.ClickException(str(exc)) from None
    if result.status != "completed":
        raise click.ClickException(f"enrollment failed: {result.error}")
    click.echo(f"enrolled {result.template_count} face(s) for {email}")


# ---------------------------------------------------------------------------- grants
@main.group()
def grants() -> None:
    """Consent grants (for bulk work and tests; people use the web pages)."""


def _subject_id(s, email: str) -> int:
    from consent_service.accounts import service as accounts

    user = accounts.find_user(s, email)
    if user is None:
        raise click.ClickException(f"no account for {email}")
    return accounts.subject_of(s, user).id


def _operation(value: str):
    from consent_service.vocabulary import Operation

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
@click.option("--purpose", default="")
def grants_add(email, operations, roles, provider_names, until, purpose) -> None:
    """Record a grant on the person's behalf (evidence says it came from the operator CLI)."""
    from consent_service import db as dbm
    from consent_service.consent import service
    from consent_service.providers.service import find_provider
    from consent_service.services import services
    from consent_service.vocabulary import Role

    try:
        role_list = [Role(r.strip()) for r in roles.split(",") if r.strip()]
        valid_until = (
            datetime.combine(datetime.strptime(until, "%Y-%m-%d").date(), dtime.max, tzinfo=UTC)
            if until
            else None
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    app = _app()
    with app.app_context(), dbm.unit_of_work() as s:
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
            ),
            service.Evidence(actor="operator:cli", identity_method="operator-cli"),
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
    from consent_service import db as dbm
    from consent_service.consent import service
    from consent_service.services import services

    app = _app()
    with app.app_context(), dbm.unit_of_work() as s:
        subject_id = _subject_id(s, email)
        active = service.find_active(s, subject_id, _operation(operation))
        for g in active:
            service.revoke(
                s,
                services().audit_key,
                subject_id,
                g.grant_id,
                service.Evidence(actor="operator:cli", identity_method="operator-cli"),
            )
    click.echo(f"revoked {len(active)} grant(s) covering {operation} for {email}")


# ---------------------------------------------------------------------------- jobs
@main.group()
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
@click.option("--idempotency-key", default=None)
@click.option("--wait/--no-wait", default=False, help="Wait for the decision.")
@click.option("--timeout", default=300, show_default=True, type=int)
def jobs_submit(api_key, url, operation, source, target, idempotency_key, wait, timeout) -> None:
    """Submit media for a planned edit and print the job (with --wait, the decision) as JSON."""
    from consent_service.client import ApiError, ConsentClient

    client = ConsentClient(url, api_key)
    try:
        job = client.gate(
            operation,
            source=list(source),
            target=list(target),
            wait=wait,
            idempotency_key=idempotency_key,
            timeout=timeout,
        )
    except ApiError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
    click.echo(json.dumps(job, indent=2))


@main.command()
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the demo's data (default: a new temporary folder).",
)
def demo(home: str | None) -> None:
    """Run the whole story on real sample photos and print each decision."""
    from consent_service.demo import run_demo

    sys.exit(run_demo(Path(home) if home else None, click.echo))


if __name__ == "__main__":
    main()
