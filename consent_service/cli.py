"""`consent-service`: run the service (web app, worker, beat, the demo), and the operator's
commands for bulk work and tests. Each capability owns its command group (`<capability>/cli.py`);
they are registered here, and only here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click
from flask import Flask
from sqlalchemy.engine import make_url
from waitress import serve as waitress_serve

from consent_service.app import create_app, create_web_app
from consent_service.biometrics.cli import subjects
from consent_service.cli_support import AppLoader
from consent_service.complaints.cli import complaints_group
from consent_service.consent.cli import grants, purposes
from consent_service.demo import run_demo
from consent_service.gate.cli import jobs
from consent_service.keys.cli import keys
from consent_service.labels.cli import label_group
from consent_service.mail import read_outbox
from consent_service.migrate import upgrade
from consent_service.operators.audit_cli import audit
from consent_service.operators.cli import operators
from consent_service.portal.cli import providers_add_staff
from consent_service.processes import beat_command, shard_worker_command, worker_command
from consent_service.providers.cli import providers
from consent_service.queues import ALL_QUEUES
from consent_service.retention.cli import retention_group
from consent_service.rights.cli import receipts, subjects_export
from consent_service.settings import Settings
from consent_service.tokens.cli import tokens
from consent_service.webhooks.cli import webhooks


def _migrated_settings() -> Settings:
    """Settings in force, with the data folder present and the schema up to date."""
    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url)
    return settings


def _app() -> Flask:
    return create_app(_migrated_settings())


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """Consent Service: who may edit whose face, checked before every edit."""
    if ctx.obj is None:  # tests may hand in their own
        ctx.obj = AppLoader(_app)


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
    return make_url(url).render_as_string(hide_password=True)


# ---------------------------------------------------------------------------- mail
@main.group()
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


# ---------------------------------------------------------------------------- processes
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
def serve(host: str, port: int, threads: int) -> None:
    """Start the web app and a worker on the configured (default: embedded) database and broker."""
    app = create_web_app(_migrated_settings())  # public keys only: the worker signs
    settings = app.extensions["consent_services"].settings
    workers = [
        subprocess.Popen(
            worker_command(
                settings.worker_processes, beat_schedule=settings.home / "celerybeat-schedule"
            )
        )
    ]
    # GALLERY_SHARDS > 1: a worker of every shard on this host too, so the service runs as is.
    workers += [
        subprocess.Popen(shard_worker_command(k), env={**os.environ, "GALLERY_SHARD": str(k)})
        for k in range(settings.gallery_shards if settings.gallery_shards > 1 else 0)
    ]
    # A service manager stops us with SIGTERM: leave through `finally` so the workers stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        click.echo(f"Consent Service on http://{host}:{port}/ (data in {settings.home})")
        waitress_serve(app, host=host, port=port, threads=threads)
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            process.wait(timeout=30)


@main.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--concurrency",
    default=None,
    type=click.IntRange(min=1),
    help="Worker processes; each holds its own face model (about 300 MB). "
    "Default: WORKER_CONCURRENCY, else one per core.",
)
@click.option(
    "--queues",
    default=",".join(ALL_QUEUES),
    show_default=True,
    help="The queues this worker consumes: run `webhooks` on workers of its own in production, "
    "so a slow receiver never holds a matching process.",
)
@click.option(
    "--shard",
    default=None,
    type=click.IntRange(min=0),
    help="Serve this shard of the gallery (0 to GALLERY_SHARDS - 1) instead of --queues: its "
    "queues and the merges, one process by default (each holds its own copy of the shard).",
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(
    concurrency: int | None, queues: str, shard: int | None, celery_args: tuple[str, ...]
) -> None:
    """Start a Celery worker (extra arguments go to `celery worker`)."""
    settings = _migrated_settings()
    if shard is not None:
        if not shard < settings.gallery_shards or settings.gallery_shards < 2:
            raise click.BadParameter(
                f"GALLERY_SHARDS is {settings.gallery_shards}: shards are 0 to "
                f"{settings.gallery_shards - 1}",
                param_hint="--shard",
            )
        cmd = [*shard_worker_command(shard, concurrency or 1), *celery_args]
        env = {**os.environ, "GALLERY_SHARD": str(shard)}  # the worker's Settings read it
        os.execve(cmd[0], cmd, env)  # noqa: S606 - replaces this process with the worker
        return
    names = tuple(q.strip() for q in queues.split(",") if q.strip())
    unknown = sorted(set(names) - set(ALL_QUEUES))
    if not names or unknown:
        raise click.BadParameter(f"choose among {', '.join(ALL_QUEUES)}", param_hint="--queues")
    cmd = worker_command(concurrency or settings.worker_processes, celery_args, queues=names)
    os.execv(cmd[0], cmd)  # noqa: S606 - replaces this process with the worker


@main.command()
def beat() -> None:
    """Start Celery beat alone: the periodic tasks (webhook retries) for separate workers. Run
    exactly one; `serve` runs it inside its worker instead."""
    settings = _migrated_settings()
    cmd = beat_command(settings.home / "celerybeat-schedule")
    os.execv(cmd[0], cmd)  # noqa: S606 - replaces this process with beat


@main.command()
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the demo's data (default: a new temporary folder).",
)
def demo(home: str | None) -> None:
    """Run the whole story on real sample photos and print each decision."""
    sys.exit(run_demo(Path(home) if home else None, click.echo))


# ---------------------------------------------------------------------------- capabilities
# Every capability's command group, registered in this one place. A group may gather commands of
# several capabilities: a provider's portal staff, a person's export under their rights.
providers.add_command(providers_add_staff)
subjects.add_command(subjects_export)
for group in (
    providers,
    subjects,
    grants,
    purposes,
    receipts,
    jobs,
    webhooks,
    tokens,
    operators,
    audit,
    keys,
):
    main.add_command(group)
main.add_command(retention_group, "retention")
main.add_command(complaints_group, "complaints")
main.add_command(label_group, "label")


if __name__ == "__main__":
    main()
