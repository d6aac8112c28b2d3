"""`consent-service subjects import`: an operator enrolls a person's face photos and/or voice."""

from __future__ import annotations

from pathlib import Path

import click

from consent_service import db
from consent_service.biometrics.models import Enrollment
from consent_service.biometrics.operator_import import import_face, import_voice
from consent_service.biometrics.service import wait_for_enrollment
from consent_service.cli_support import command_app, unit_of_work
from consent_service.runtime import services
from consent_service.vocabulary import EnrollmentStatus


@click.group()
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
    until templates exist. Only where ALLOW_UPLOADED_ENROLLMENT allows it (unset: development
    only); the person's assurance is then `uploaded`."""
    if not faces and not voice:
        raise click.UsageError("Give --face photos, a --voice recording, or both.")
    started: list[tuple[str, str]] = []  # (what, enrollment id)
    # One unit of work: the account and the pending enrollments; its end sends their tasks.
    with unit_of_work() as s:
        svc = services()
        if not svc.settings.uploaded_enrollment_allowed:
            raise click.ClickException(
                "Enrollment from uploaded photos and recordings is turned off here "
                "(ALLOW_UPLOADED_ENROLLMENT): people enroll with the live consent session."
            )
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
    if created:
        click.echo(f"created account {email}")
    results: list[tuple[str, Enrollment]] = []
    with command_app().app_context():  # then wait for the worker
        for what, enrollment_id in started:
            try:
                results.append((what, wait_for_enrollment(db.engine(), enrollment_id, timeout)))
            except TimeoutError as exc:
                raise click.ClickException(str(exc)) from None
    for what, result in results:
        if result.status != EnrollmentStatus.COMPLETED:
            raise click.ClickException(f"{what} enrollment failed: {result.error}")
        click.echo(f"enrolled {result.template_count} {what}(s) for {email}")
