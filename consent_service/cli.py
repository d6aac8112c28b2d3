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


def worker_command(
    concurrency: int = 1, extra: tuple[str, ...] = (), beat_schedule: Path | None = None
) -> list[str]:
    """The `celery worker` argv; with `beat_schedule`, the worker also runs beat (periodic
    tasks such as webhook retries): right for one worker, not for several."""
    from consent_service.queues import DEFAULT_QUEUE, MATCHING_QUEUE

    beat = ("--beat", "--schedule", str(beat_schedule)) if beat_schedule else ()
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
        *beat,
        *extra,
    ]


def beat_command(schedule: Path) -> list[str]:
    """The `celery beat` argv (exactly one beat per deployment; its state file at `schedule`)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "beat",
        "--schedule",
        str(schedule),
        "--loglevel",
        "INFO",
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
    worker = subprocess.Popen(worker_command(beat_schedule=settings.home / "celerybeat-schedule"))
    # A service manager stops us with SIGTERM: leave through `finally` so the worker stops too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
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


@main.command()
def beat() -> None:
    """Start Celery beat alone: the periodic tasks (webhook retries) for separate workers. Run
    exactly one; `serve` runs it inside its worker instead."""
    settings = _migrated_settings()
    cmd = beat_command(settings.home / "celerybeat-schedule")
    os.execv(cmd[0], cmd)  # noqa: S606 - replaces this process with beat


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


@providers.command("add-staff")
@click.argument("name")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="admin", show_default=True)
@click.option(
    "--password",
    default=None,
    help="For a new account; without it a password is generated and printed once.",
)
def providers_add_staff(name: str, email: str, role: str, password: str | None) -> None:
    """Give an account (created if needed) access to the provider's portal at /portal."""
    from consent_service import db as dbm
    from consent_service.errors import DomainError
    from consent_service.portal.service import add_staff
    from consent_service.providers.service import find_provider
    from consent_service.services import services

    app = _app()
    with app.app_context():
        try:
            with dbm.unit_of_work() as s:
                added = add_staff(
                    s, services().audit_key, find_provider(s, name), email, role, password
                )
        except DomainError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"{added.user.email} is {role} of {name}: sign in at /login, then open /portal")
    if added.password is not None:
        click.echo("password (shown once; store it now):")
        click.echo(added.password)


# ---------------------------------------------------------------------------- subjects
@main.group()
def subjects() -> None:
    """People whose faces are protected."""


@subjects.command("import")
@click.option("--email", required=True)
@click.option("--face", "faces", multiple=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--voice",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="A recording of the person speaking (needs the `voice` extra).",
)
@click.option("--password", default=None, help="For a new account; a random one if omitted.")
@click.option(
    "--timeout",
    default=300,
    show_default=True,
    type=int,
    help="Seconds to wait for the worker to make the templates.",
)
def subjects_import(
    email: str, faces: tuple[str, ...], voice: str | None, password: str | None, timeout: int
) -> None:
    """Create the account if needed, enroll the face photos and/or the voice recording and wait
    until templates exist."""
    from consent_service import db as dbm
    from consent_service.biometrics.service import import_face, wait_for_enrollment
    from consent_service.biometrics.voice_service import import_voice
    from consent_service.errors import DomainError
    from consent_service.services import services

    if not faces and not voice:
        raise click.UsageError("Give --face photos, a --voice recording, or both.")
    app = _app()
    with app.app_context():
        svc = services()
        started = []  # (what, enrollment id); their tasks are sent when the unit of work ends
        try:
            with dbm.unit_of_work() as s:
                if faces:
                    enrollment, created = import_face(
                        s,
                        svc.media_store,
                        email,
                        [Path(f).read_bytes() for f in faces],
                        svc.settings.enrollment_max_photos,
                        password,
                    )
                    started.append(("face", enrollment.id))
                if voice:
                    enrollment, made = import_voice(
                        s, svc.media_store, email, Path(voice).read_bytes(), password
                    )
                    created = made if not faces else created
                    started.append(("voice", enrollment.id))
        except DomainError as exc:
            raise click.ClickException(str(exc)) from None
        if created:
            click.echo(f"created account {email}")
        results = []
        for what, enrollment_id in started:
            try:
                results.append((what, wait_for_enrollment(dbm.engine(), enrollment_id, timeout)))
            except TimeoutError as exc:
                raise click.ClickException(str(exc)) from None
    for what, result in results:
        if result.status != "completed":
            raise click.ClickException(f"{what} enrollment failed: {result.error}")
        click.echo(f"enrolled {result.template_count} {what}(s) for {email}")


@subjects.command("export")
@click.argument("email")
@click.option(
    "--base-url",
    default="http://127.0.0.1:5000/",
    show_default=True,
    help="The web address people manage consent at (named in the receipts).",
)
def subjects_export(email: str, base_url: str) -> None:
    """Print everything held about one person as JSON (an access request answered by an
    operator); the same export the person downloads from their dashboard."""
    from consent_service import db as dbm
    from consent_service.accounts import service as accounts
    from consent_service.consent.receipts import Controller
    from consent_service.rights import service as rights
    from consent_service.services import services

    app = _app()
    with app.app_context():
        s = dbm.session()
        user = accounts.find_user(s, email)
        if user is None:
            raise click.ClickException(f"no account for {email}")
        body = rights.export(s, user, Controller.from_settings(services().settings), base_url)
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


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


# ---------------------------------------------------------------------------- webhooks
@main.group()
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
    from consent_service import db as dbm
    from consent_service.errors import DomainError
    from consent_service.providers.service import find_provider
    from consent_service.services import services
    from consent_service.webhooks import service

    app = _app()
    with app.app_context():
        svc = services()
        try:
            with dbm.unit_of_work() as s:
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
        except DomainError as exc:
            raise click.ClickException(str(exc)) from None
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
    from consent_service import db as dbm
    from consent_service.errors import DomainError
    from consent_service.providers.service import find_provider
    from consent_service.webhooks import service

    app = _app()
    with app.app_context(), dbm.unit_of_work() as s:
        try:
            provider = find_provider(s, provider_name)
        except DomainError as exc:
            raise click.ClickException(str(exc)) from None
        rows = [service.delivery_view(d) for d in service.list_deliveries(s, provider, limit)]
    click.echo(json.dumps(rows, indent=2))


# ---------------------------------------------------------------------------- mail
@main.group()
def mail() -> None:
    """Mail the service sends (consent-request links)."""


@mail.command("outbox")
@click.option("--full", is_flag=True, help="Print each mail's text too.")
def mail_outbox(full: bool) -> None:
    """The mails written to the local outbox (no SMTP_HOST configured), oldest first."""
    from consent_service.consent_requests.mail import read_outbox

    settings = Settings()
    mails = read_outbox(settings.mail_outbox_dir)
    if not mails:
        click.echo(f"No mail in {settings.mail_outbox_dir}.")
    for m in mails:
        click.echo(f"{m['date']}  to {m['to']}: {m['subject']}\n  {m['file']}")
        if full:
            click.echo(m["body"])


# ---------------------------------------------------------------------------- tokens
@main.group()
def tokens() -> None:
    """Decision-signing keys and decision tokens."""


def _key_file_update(change) -> None:
    """Apply `change` (KeyRing → KeyRing) to the configured key set: the key file is rewritten;
    an inline DECISION_SIGNING_KEYS (or none, in production) gets the new set printed."""
    from consent_service.tokens import service

    settings = Settings()
    path = service.configured_keys_path(settings)
    try:
        if path is not None and (path.exists() or not settings.is_production):
            ring = service.load_keyring(settings)
        elif (settings.decision_signing_keys or "").strip():
            ring = service.parse_keyring(settings.decision_signing_keys or "")
        else:
            ring = None
        new = change(ring)
    except service.KeyConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if path is not None:
        service.save_keyring(path, new)
        click.echo(f"decision keys written to {path}; restart every web process and worker")
    else:
        click.echo(new.to_json(indent=None))
        click.echo("set DECISION_SIGNING_KEYS to the JSON above (a secret)", err=True)


@tokens.command("rotate")
@click.option(
    "--activate-in",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Seconds before the new key signs; it is published at once.",
)
def tokens_rotate(activate_in: int) -> None:
    """Add a new signing key; older keys stay published so their tokens keep verifying."""
    from consent_service.tokens import service

    def change(ring):
        if ring is None:
            return service.KeyRing((service.generate_key(),))
        return service.rotate(ring, activate_in)

    _key_file_update(change)


@tokens.command("retire")
@click.argument("kid")
@click.option("--remove", is_flag=True, help="Unpublish it too (once its tokens have expired).")
def tokens_retire(kid: str, remove: bool) -> None:
    """Stop a key signing (it stays published), or remove it."""
    from consent_service.tokens import service

    def change(ring):
        if ring is None:
            raise service.KeyConfigError("There are no decision keys yet.")
        return service.retire(ring, kid, remove)

    _key_file_update(change)


@tokens.command("verify")
@click.argument("token")
@click.option("--url", default=None, help="Verify against this server's JWKS, not local keys.")
@click.option("--audience", default=None, help="Require this provider id as `aud`.")
@click.option("--issuer", default=None, help="Require this `iss`.")
def tokens_verify(token: str, url: str | None, audience: str | None, issuer: str | None) -> None:
    """Check a decision token (`-` reads it from stdin) and print its claims; exit 1 if invalid."""
    import requests

    from consent_service.errors import TokenInvalid
    from consent_service.tokens import service

    if token == "-":  # noqa: S105 - "-" means stdin; not a password
        token = sys.stdin.read().strip()
    try:
        if url:
            answer = requests.get(url.rstrip("/") + "/.well-known/jwks.json", timeout=10)
            answer.raise_for_status()
            keys = service.keys_from_jwks(answer.json())
        else:
            settings = Settings()
            path = service.configured_keys_path(settings)
            inline = (settings.decision_signing_keys or "").strip()
            if not inline and (path is None or not path.exists()):
                raise click.ClickException("No local decision keys; pass --url SERVER.")
            keys = service.load_keyring(settings).public_keys()
    except (requests.RequestException, ValueError) as exc:
        raise click.ClickException(f"Cannot get the keys: {exc}") from None
    try:
        claims, kid = service.verify_token(token, keys, audience=audience, issuer=issuer)
    except TokenInvalid as exc:
        click.echo(f"invalid: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps({"valid": True, "kid": kid, "claims": claims}, indent=2))


@main.group()
def operators() -> None:
    """Operator accounts (the console at /operator)."""


@operators.command("add")
@click.argument("email")
def operators_add(email: str) -> None:
    """Make an account an operator, creating it (random password: reset it) if missing."""
    from consent_service import db as dbm
    from consent_service.operators.service import add_operator
    from consent_service.services import services

    app = _app()
    with app.app_context(), dbm.unit_of_work() as s:
        user, created = add_operator(s, services().audit_key, email)
    click.echo(f"{user.email} is an operator{' (new account)' if created else ''}")


@main.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
def audit_verify() -> None:
    """Walk the whole chain; exit 1 naming the first bad entry."""
    from consent_service import db as dbm
    from consent_service.audit.service import verify
    from consent_service.services import services

    app = _app()
    with app.app_context():
        report = verify(dbm.session(), services().audit_key)
    if report.ok:
        click.echo(f"audit chain intact: {report.checked} entries")
        return
    click.echo(
        f"audit chain broken at seq {report.first_bad_seq}: {report.problem} "
        f"({report.checked} entries verified before it)",
        err=True,
    )
    sys.exit(1)


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
