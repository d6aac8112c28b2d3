"""`consent-service label`: write a decision's label into a file (`embed`, in this installation:
it verifies the token and looks the decision up), and read a file's label and ask the service
whether its decision still stands (`read`, over HTTP like anyone holding the file)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import requests

from consent_service import db
from consent_service.cli_support import command_app, reported_errors, unit_of_work
from consent_service.labels import service
from consent_service.runtime import services
from consent_service.settings import Settings
from consent_service.timeutil import utcnow

# `label read`'s exit status when the label's decision no longer stands or is unknown.
NOT_STANDING = 3


@click.group("label")
def label_group() -> None:
    """Labels inside edited files: GB 45438 AIGC metadata and a signed C2PA manifest."""


@label_group.command("embed")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--token", required=True, help="The job's decision token (`-`: read it from stdin).")
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def embed(file: Path, token: str, out: Path) -> None:
    """Write the label of the decision TOKEN signs into FILE (JPEG, PNG or MP4), as OUT. Only an
    `allow` that still stands gets one."""
    if token == "-":  # noqa: S105 - stdin's name, not a secret
        token = sys.stdin.read()
    with unit_of_work() as session:
        svc = services()
        label = service.label_for_token(
            session,
            token,
            svc.decision_keys.public_keys(),
            issuer=svc.settings.decision_token_issuer,
            public_url=svc.settings.public_url,
            now=utcnow(),
        )
        data, media_type = service.embed(
            file.read_bytes(),
            label,
            service.signing_credentials(lambda: svc.label_credentials),
            title=file.name,
        )
    out.write_bytes(data)
    click.echo(f"{out}: {media_type}, labelled (ReservedCode1 {label.aigc['ReservedCode1']})")


@label_group.command("read")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--service",
    "service_url",
    envvar="CONSENT_SERVICE_URL",
    default=None,
    help="The service to ask (default: PUBLIC_URL). The label's own status URL is shown, "
    "never followed: a file may name any address.",
)
@click.option("--local", is_flag=True, help="Read the status from this installation's database.")
@click.option("--json", "as_json", is_flag=True, help="Print the label and status as JSON.")
def read(file: Path, service_url: str | None, local: bool, as_json: bool) -> None:
    """Print FILE's label and whether its decision still stands. Exit status 0 when it does,
    1 when the file carries no label, 3 when its decision no longer stands or is unknown."""
    with reported_errors():
        found = service.read(file.read_bytes())
    if not found.digest:
        raise click.ClickException(f"{file}: no label of this service")
    if local:
        with command_app().app_context():
            answer = service.status_of(db.session(), found.digest, utcnow())
        status = answer.model_dump(mode="json") if answer is not None else None
    else:
        status = _ask(service_url or Settings().public_url, found.digest)
    if as_json:
        click.echo(json.dumps(_as_dict(found, status), indent=2, ensure_ascii=False))
    else:
        _print(found, status)
    if status is None or status.get("status") != "valid":
        raise SystemExit(NOT_STANDING)


def _ask(base: str, digest: str) -> dict | None:
    url = service.status_url(base, digest)
    try:
        answer = requests.get(url, timeout=10)
    except requests.RequestException as exc:
        raise click.ClickException(f"cannot reach {base}: {exc}") from None
    if answer.status_code == 404:
        return None
    if answer.status_code != 200:
        raise click.ClickException(f"{url} answered {answer.status_code}: {answer.text[:200]}")
    return answer.json()


def _as_dict(found: service.FoundLabel, status: dict | None) -> dict:
    manifest = found.manifest
    return {
        "media_type": found.media_type,
        "aigc": found.aigc,
        "aigc_in": found.aigc_in,
        "consent": found.consent,
        "c2pa": (
            {
                "validation_state": manifest.validation_state,
                "failures": manifest.failures,
                "signer": manifest.signer,
            }
            if manifest
            else None
        ),
        "consistent": found.consistent,
        "status": status,
    }


def _print(found: service.FoundLabel, status: dict | None) -> None:
    echo = click.echo
    echo(f"AIGC ({found.aigc_in or 'none'}): {json.dumps(found.aigc, ensure_ascii=False)}")
    if found.consent:
        for key in ("decision", "operation", "token_sha256", "status_url", "issued_at"):
            echo(f"consent.{key}: {found.consent.get(key)}")
    manifest = found.manifest
    if manifest is None:
        echo("C2PA: none")
    else:
        extra = f", {', '.join(manifest.failures)}" if manifest.failures else ""
        echo(f"C2PA: {manifest.validation_state}{extra} (signed by {manifest.signer})")
    if not found.consistent:
        echo("warning: the XMP label and the signed manifest name different decisions")
    if status is None:
        echo("status: unknown (no decision of this service has this code)")
        return
    since = f" since {status['since']}" if status.get("since") else ""
    echo(
        f"status: {status['status']}{since} "
        f"(decision {status['decision']}, checked {status['checked_at']})"
    )
