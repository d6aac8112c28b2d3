"""`consent-service keys`: the keyring's purposes and versions, and rotating each of them."""

from __future__ import annotations

from pathlib import Path

import click

from consent_service.audit.checkpoints import CheckpointKeyError, load_signers
from consent_service.cli_support import command_app, unit_of_work
from consent_service.crypto import wrapped_key_id
from consent_service.keyring import KeyringError, Purpose, key_set_json, new_version
from consent_service.keys import rotation, service
from consent_service.runtime import services
from consent_service.tokens.service import KeyConfigError


@click.group()
def keys() -> None:
    """The keyring: one key per purpose, rotated online."""


@keys.command("list")
def keys_list() -> None:
    """Each purpose's key versions (the last protects new data) and what each protects."""
    with command_app().app_context():
        svc = services()
        for purpose in (Purpose.TEMPLATE_KEK, Purpose.MEDIA, Purpose.AUDIT_MAC, Purpose.PSEUDONYMS):
            versions = svc.keyring.versions(purpose, fresh=True)
            where = svc.keyring.provider.where(purpose)
            click.echo(f"{purpose.value} ({where}): " + ", ".join(v.kid for v in versions))
        click.echo("decision-signing: " + ", ".join(k.kid for k in svc.decision_keys.keys))
        click.echo(
            "checkpoint-signing: "
            + ", ".join(k.verifier.key_id.hex() for k in load_signers(svc.settings))
        )
        media = _media_versions(svc.settings.media_dir)
        click.echo(
            "media files by key: " + (", ".join(f"{k} {n}" for k, n in media.items()) or "none")
        )
    with unit_of_work() as s:
        for table, counts in service.kek_versions(s).items():
            shown = ", ".join(f"{kid} {n}" for kid, n in sorted(counts.items())) or "none"
            click.echo(f"{table} rows by template KEK: {shown}")


def _media_versions(folder: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if not folder.is_dir():
        return counts
    for path in folder.iterdir():
        if path.name.startswith("."):
            continue
        head = path.read_bytes()[:80]
        n = int.from_bytes(head[:2], "big")
        try:
            kid = wrapped_key_id(head[2 : 2 + n])
        except (ValueError, UnicodeDecodeError):
            kid = "unreadable"
        counts[kid] = counts.get(kid, 0) + 1
    return counts


@keys.command("rotate")
@click.argument("purpose", type=click.Choice([p.value for p in Purpose]))
@click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(min=1),
    help="Template KEK: data keys re-wrapped per transaction.",
)
def keys_rotate(purpose: str, batch_size: int) -> None:
    """Add a new version of PURPOSE's key; new data goes under it and older versions stay
    readable. For template-kek every data key is then re-wrapped (online, resumable: run it
    again after a crash). Pseudonyms: subjects keep the references providers hold."""
    chosen = Purpose(purpose)
    with command_app().app_context():
        svc = services()
        try:
            result = rotation.rotate(
                chosen, svc.keyring, svc.settings, unit_of_work, batch_size=batch_size
            )
        except (rotation.RotationRefused, KeyringError, KeyConfigError, CheckpointKeyError) as exc:
            raise click.ClickException(str(exc)) from None
    resumed = " (resumed)" if result.resumed else ""
    click.echo(
        f"{chosen.value}: now {result.key_id}{resumed}; {result.rows} rows moved in "
        f"{result.seconds:.1f} s"
    )


@keys.command("new")
def keys_new() -> None:
    """Print a key set of one new version (for KEYRING_<PURPOSE> or a key file): a secret."""
    click.echo(key_set_json([new_version()]), nl=False)
