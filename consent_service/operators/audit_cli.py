"""`consent-service audit`: check the audit log against its signed checkpoints; make them.

An operator's group kept with the operators rather than in `audit`: `verify --against` also
accepts decision tokens, whose signature is checked with the token keys (`tokens` sits above the
log in docs/architecture.md)."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import click

from consent_service.audit import service
from consent_service.audit.checkpoints import (
    Checkpoint,
    CheckpointError,
    CheckpointKeyError,
    VerifierKey,
    checkpoint_key_path,
    load_signers,
    new_key_text,
    parse_note,
    save_verifiers,
    split_notes,
    verifiers_file_for,
)
from consent_service.audit.tasks import checkpoint_now
from consent_service.cli_support import command_app, unit_of_work
from consent_service.errors import TokenInvalid
from consent_service.runtime import services
from consent_service.settings import InsecureSettings
from consent_service.tokens.service import verify_token

# A token that has expired still witnesses the log as it was when it was signed.
_ANY_AGE = 100 * 365 * 24 * 3600.0


@click.group()
def audit() -> None:
    """The audit log: a hash chain and a Merkle tree with signed checkpoints."""


def _read(source: str) -> str:
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=30) as response:  # noqa: S310 - http(s) only
            return response.read(4 * 1024 * 1024).decode()
    return Path(source).expanduser().read_text()


def _witnesses(
    text: str, source: str, keys: list[VerifierKey]
) -> tuple[list[Checkpoint], list[Checkpoint]]:
    """The signed checkpoints and token heads in a file or an answer: signed notes (one or
    many), the checkpoint endpoint's JSON, or decision tokens (one per line)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            stripped = json.loads(stripped)["checkpoint"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise click.ClickException(f"{source}: JSON without a `checkpoint` note") from None
    if stripped.count(".") == 2 and "\n" not in stripped or stripped.startswith("eyJ"):
        return [], [_token_head(line.strip(), source) for line in stripped.splitlines() if line]
    notes = split_notes(stripped + "\n")
    if not notes:
        raise click.ClickException(f"{source}: no checkpoint in it")
    held = []
    for number, note in enumerate(notes, 1):
        try:
            held.append(parse_note(note, keys))
        except CheckpointError as exc:
            raise click.ClickException(f"{source}, checkpoint {number}: {exc}") from None
    return held, []


def _token_head(token: str, source: str) -> Checkpoint:
    settings = services().settings
    try:
        claims, _ = verify_token(
            token,
            services().decision_keys.public_keys(),
            issuer=settings.decision_token_issuer,
            leeway=_ANY_AGE,
        )
        claim = claims["audit_checkpoint"]
        root = Checkpoint.root_from_b64(claim["root"])
        return Checkpoint("", int(claim["size"]), root, int(claims["iat"]))
    except TokenInvalid as exc:
        raise click.ClickException(f"{source}: {exc}") from None
    except (KeyError, TypeError, ValueError):
        raise click.ClickException(f"{source}: the token names no audit checkpoint") from None


def _verifier_keys(extra: tuple[str, ...]) -> list[VerifierKey]:
    keys = []
    try:
        # Every key of the key set: checkpoints signed before a rotation keep verifying.
        keys += [signer.verifier for signer in load_signers(services().settings)]
    except (InsecureSettings, CheckpointKeyError) as exc:
        if not extra:
            raise click.ClickException(f"{exc} (or give the public key with --key)") from None
    for text in extra:
        try:
            keys.append(VerifierKey.parse(text))
        except CheckpointError as exc:
            raise click.ClickException(f"--key {text}: {exc}") from None
    return keys


@audit.command("verify")
@click.option(
    "--against",
    "sources",
    multiple=True,
    metavar="CHECKPOINT_FILE_OR_URL",
    help="A checkpoint held elsewhere (a signed note or several, the checkpoint endpoint's "
    "answer, or decision tokens): the log must extend it. Repeatable.",
)
@click.option(
    "--key",
    "extra_keys",
    multiple=True,
    metavar="VERIFIER_KEY",
    help="Another checkpoint public key (`name+id+base64`), e.g. a retired one. Repeatable.",
)
def audit_verify(sources: tuple[str, ...], extra_keys: tuple[str, ...]) -> None:
    """Recompute the chain and the tree; check every checkpoint (in the database, in the
    checkpoint file, and those given) is signed and is a prefix of the log. Exit 1 on any
    problem."""
    app = command_app()
    with app.app_context():
        settings = services().settings
        keys = _verifier_keys(extra_keys)
        held: list[Checkpoint] = []
        heads: list[Checkpoint] = []
        kept = settings.audit_checkpoints_path
        named = [(str(kept), kept.read_text())] if kept.exists() else []
        for source in sources:
            try:
                named.append((source, _read(source)))
            except (OSError, UnicodeDecodeError) as exc:
                raise click.ClickException(f"cannot read {source}: {exc}") from None
        for source, text in named:
            if not text.strip():
                continue
            found, tokens = _witnesses(text, source, keys)
            held += found
            heads += tokens
    with unit_of_work() as s:
        report = service.verify_log(s, services().audit_key, keys, held, heads)
    if report.ok:
        click.echo(f"audit chain intact: {report.size} entries")
        click.echo(
            f"merkle root {Checkpoint('', report.size, report.root, 0).root_b64}; consistent "
            f"with {report.checkpoints} signed checkpoint(s)"
        )
        return
    chain = report.chain
    if not chain.ok:
        click.echo(
            f"audit chain broken at seq {chain.first_bad_seq}: {chain.problem} "
            f"({chain.checked} entries verified before it)",
            err=True,
        )
    click.echo(f"audit log NOT intact ({report.size} entries now):", err=True)
    for problem in report.problems:
        click.echo(f"  - {problem}", err=True)
    sys.exit(1)


@audit.command("checkpoint")
@click.option("--force", is_flag=True, help="Sign one even if the log has not grown.")
def audit_checkpoint(force: bool) -> None:
    """Sign a checkpoint of the log now (beat does it every AUDIT_CHECKPOINT_INTERVAL) and
    print it; it is also appended to the checkpoint file."""
    with command_app().app_context():
        row = checkpoint_now(force=force)
    if row is None:
        click.echo("the log has not grown since the last checkpoint (--force to sign anyway)")
        return
    click.echo(row.note, nl=False)


@audit.command("public-key")
@click.option(
    "--write",
    is_flag=True,
    help="Also write them beside the key file (`<key file>.pub`), where the web reads them.",
)
def audit_public_key(write: bool) -> None:
    """Print the checkpoint verifier keys, oldest first (the last signs now), for witnesses to
    pin and for AUDIT_CHECKPOINT_PUBLIC_KEYS."""
    with command_app().app_context():
        settings = services().settings
        try:
            verifiers = [signer.verifier for signer in load_signers(settings)]
            path = checkpoint_key_path(settings)
            if write and path is None:
                raise CheckpointKeyError(
                    "AUDIT_CHECKPOINT_KEY holds the key inline: set AUDIT_CHECKPOINT_PUBLIC_KEYS "
                    "to the lines printed instead"
                )
            if write and path is not None:
                save_verifiers(verifiers_file_for(path), verifiers)
                click.echo(f"written to {verifiers_file_for(path)}", err=True)
        except (InsecureSettings, CheckpointKeyError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
        for key in verifiers:
            click.echo(key.vkey())


@audit.command("new-key")
def audit_new_key() -> None:
    """Print a new checkpoint signing key (for AUDIT_CHECKPOINT_KEY or its file): a secret."""
    click.echo(new_key_text())
