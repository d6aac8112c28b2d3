"""The operator's commands, each one unit of work: its writes are committed together, the tasks
its services registered are sent only after that commit, and a refused command leaves nothing
behind. The app is handed to the CLI (`AppLoader`) with a task sender that records what it sends;
no worker runs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from sqlmodel import Session, select

from consent_service.app import create_app
from consent_service.biometrics.models import Enrollment
from consent_service.cli import main
from consent_service.cli_support import AppLoader
from consent_service.consent.models import ConsentGrant
from consent_service.migrate import upgrade
from consent_service.settings import Settings


@dataclass
class Cli:
    app: Flask
    sent: list[tuple[str, list[str]]] = field(default_factory=list)

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(main, list(args), obj=AppLoader(lambda: self.app))

    def rows(self, model) -> list:
        with Session(self.app.extensions["db_engine"]) as s:
            return list(s.exec(select(model)).all())


@pytest.fixture
def cli(tmp_path) -> Iterator[Cli]:
    settings = Settings(consent_service_home=tmp_path, broker_url="memory://")
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    cli = Cli(app)

    def send(name: str, args: list[str]) -> None:
        # Sent only after the commit: another session already sees the row the task looks for.
        if name.startswith("biometrics."):
            with Session(app.extensions["db_engine"]) as other:
                assert other.get(Enrollment, args[0]) is not None
        cli.sent.append((name, args))

    app.extensions["task_sender"] = send
    yield cli
    app.extensions["db_engine"].dispose()


def _import_ann(cli: Cli, photos) -> Result:
    face = str(photos["obama.jpg"])
    return cli("subjects", "import", "--email", "ann@example.org", "--face", face, "--timeout", "0")


def test_importing_a_subject_commits_then_sends_one_enrollment_task(cli, photos):
    result = _import_ann(cli, photos)
    # No worker runs: the command stops waiting at once, after its unit of work committed.
    assert result.exit_code == 1 and "no worker finished enrollment" in result.output
    assert "created account ann@example.org" in result.output
    (enrollment,) = cli.rows(Enrollment)
    assert enrollment.status == "pending" and len(enrollment.media_keys) == 1
    assert cli.sent == [("biometrics.enroll_face", [enrollment.id])]


def test_grants_are_added_and_revoked_in_one_unit_of_work_each(cli, photos):
    _import_ann(cli, photos)
    added = cli("grants", "add", "--email", "ann@example.org", "--operation", "face_swap")
    assert added.exit_code == 0, added.output
    assert "granted face_swap (source,target) for ann@example.org" in added.output
    revoked = cli("grants", "revoke", "--email", "ann@example.org", "--operation", "face_swap")
    assert revoked.exit_code == 0 and "revoked 1 grant(s)" in revoked.output
    # Each version's receipt is signed by a worker, sent once each command has committed.
    versions = sorted(cli.rows(ConsentGrant), key=lambda g: g.version)
    assert cli.sent == [
        ("biometrics.enroll_face", [cli.rows(Enrollment)[0].id]),
        ("receipts.sign", [str(versions[0].id)]),
        ("receipts.sign", [str(versions[1].id)]),
    ]


def test_a_refused_command_writes_nothing(cli, photos):
    _import_ann(cli, photos)
    before = len(cli.rows(ConsentGrant))
    grant = ("grants", "add", "--email", "ann@example.org", "--operation", "face_swap")
    refused = cli(*grant, "--providers", "Nope")
    assert refused.exit_code == 1 and "No provider named 'Nope'" in refused.output
    assert len(cli.rows(ConsentGrant)) == before
    unknown = cli("grants", "add", "--email", "nobody@example.org", "--operation", "face_swap")
    assert unknown.exit_code == 1 and "no account for nobody@example.org" in unknown.output


def test_a_provider_its_webhook_and_its_deliveries_from_the_cli(cli):
    created = cli("providers", "create", "Acme")
    assert created.exit_code == 0, created.output
    assert created.output.splitlines()[-1].startswith("cs_")
    hooked = cli("webhooks", "set", "--provider", "Acme", "--url", "http://127.0.0.1:9/hook")
    assert hooked.exit_code == 0, hooked.output
    assert "webhook of Acme: http://127.0.0.1:9/hook (active;" in hooked.output
    assert "signing secret (store it now" in hooked.output
    unchanged = cli("webhooks", "set", "--provider", "Acme", "--url", "http://127.0.0.1:9/hook")
    assert "signing secret unchanged" in unchanged.output
    deliveries = cli("webhooks", "deliveries", "--provider", "Acme")
    assert deliveries.exit_code == 0 and json.loads(deliveries.output) == []
    missing = cli("webhooks", "deliveries", "--provider", "Nope")
    assert missing.exit_code == 1 and "No provider named" in missing.output
    assert cli.sent == []


@pytest.mark.parametrize(
    ("args", "env", "processes"),
    [((), {}, None), (("--concurrency", "3"), {}, "3"), ((), {"WORKER_CONCURRENCY": "5"}, "5")],
)
def test_the_worker_starts_one_process_per_core_unless_told(
    tmp_path, monkeypatch, args, env, processes
):
    """`consent-service worker` replaces itself with `celery worker`: the argv it would run."""
    monkeypatch.setenv("CONSENT_SERVICE_HOME", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ran: list[list[str]] = []
    monkeypatch.setattr("consent_service.cli.os.execv", lambda _path, argv: ran.append(argv))
    result = CliRunner().invoke(main, ["worker", *args], obj=AppLoader(create_app))
    assert result.exit_code == 0, result.output
    argv = ran[0]
    expected = processes or str(len(os.sched_getaffinity(0)))
    assert argv[argv.index("--concurrency") + 1] == expected


def test_a_shard_worker_serves_its_shard_s_queues_and_the_merges(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSENT_SERVICE_HOME", str(tmp_path))
    monkeypatch.setenv("GALLERY_SHARDS", "2")
    monkeypatch.delenv("GALLERY_SHARD", raising=False)
    ran: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(
        "consent_service.cli.os.execve", lambda _path, argv, env: ran.append((argv, env))
    )
    result = CliRunner().invoke(main, ["worker", "--shard", "1"], obj=AppLoader(create_app))
    assert result.exit_code == 0, result.output
    ((argv, env),) = ran
    assert argv[argv.index("-Q") + 1] == "gallery.face.shard.1,gallery.voice.shard.1,gallery.merge"
    assert argv[argv.index("--concurrency") + 1] == "1"  # one copy of the shard in memory
    assert env["GALLERY_SHARD"] == "1" and env["GALLERY_SHARDS"] == "2"
    assert "GALLERY_SHARD" not in os.environ  # the worker's environment only, not this process
    refused = CliRunner().invoke(main, ["worker", "--shard", "2"], obj=AppLoader(create_app))
    assert refused.exit_code == 2 and "shards are 0 to 1" in refused.output
