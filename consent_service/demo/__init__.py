"""`consent-service demo`: the whole story on real photos, through the real API and a real worker,
on a fresh embedded (SQLite) instance."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import requests
from flask import Flask
from waitress import wasyncore
from waitress.server import TcpWSGIServer, create_server

from consent_service import db
from consent_service.app import create_app
from consent_service.biometrics.operator_import import import_face
from consent_service.biometrics.service import wait_for_enrollment
from consent_service.client import ConsentClient
from consent_service.consent import service as consent
from consent_service.demo.samples import Samples
from consent_service.migrate import upgrade
from consent_service.processes import shard_worker_command, worker_command
from consent_service.providers.service import create_provider, issue_key
from consent_service.runtime import services
from consent_service.settings import Settings
from consent_service.timeutil import utcnow
from consent_service.vocabulary import DecisionKind, EnrollmentStatus, Operation, Role


def _start_worker(home: Path, stack: ExitStack, shards: int) -> None:
    """The worker, and with GALLERY_SHARDS > 1 a worker of every shard beside it."""
    env = {**os.environ, "CONSENT_SERVICE_HOME": str(home), "DATABASE_URL": "", "BROKER_URL": ""}
    commands = [("worker", worker_command(1, ("--loglevel", "WARNING")), env)]
    commands += [
        (f"shard{k}", shard_worker_command(k), {**env, "GALLERY_SHARD": str(k)})
        for k in range(shards if shards > 1 else 0)
    ]
    for name, argv, process_env in commands:
        log = open(home / f"{name}.log", "wb")  # noqa: SIM115 - closed by the stack
        stack.callback(log.close)
        proc = subprocess.Popen(argv, env=process_env, stdout=log, stderr=subprocess.STDOUT)
        stack.callback(_stop, proc)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def start_web(app: Flask, stack: ExitStack) -> str:
    """Serves `app` with waitress in a thread on a free local port until `stack` closes; returns
    its URL. Closing waits for the requests in flight, then stops the server's loop, then closes
    its sockets: nothing is closed under a thread still using it."""
    sockets: dict[int, socket.socket] = {}  # the server's own map, so this thread can close it
    server = create_server(app, map=sockets, host="127.0.0.1", port=0, threads=4)
    # One address to listen on: one TCP server (a MultiSocketServer serves several).
    assert isinstance(server, TcpWSGIServer)
    stopping = threading.Event()

    def serve() -> None:  # waitress's server.run(), made to stop
        while not stopping.is_set():
            wasyncore.loop(
                timeout=server.adj.asyncore_loop_timeout,
                use_poll=server.adj.asyncore_use_poll,
                map=sockets,
                count=1,
            )

    def stop() -> None:
        # A task thread ends its request by waking the loop through the server's trigger: closed
        # first, that wake-up was the EBADF traceback the demo used to end with.
        server.task_dispatcher.shutdown()
        stopping.set()
        server.pull_trigger()
        thread.join()
        wasyncore.close_all(sockets)

    thread = threading.Thread(target=serve, name="demo-web", daemon=True)
    thread.start()
    stack.callback(stop)
    _host, port = server.getsockname()  # the port the system picked (port=0)
    return f"http://127.0.0.1:{port}"


def _metrics_summary(scrape: str) -> list[str]:
    """The scrape's samples worth a glance: every non-zero one but the latency buckets."""
    return [
        line
        for line in scrape.splitlines()
        if line.startswith("consent_")
        and "_bucket{" not in line
        and float(line.rsplit(" ", 1)[1]) != 0
    ]


def run_demo(home: Path | None, say: Callable[[str], None]) -> int:
    """Returns 0 when every decision came out as the story expects, 1 otherwise."""
    temporary = home is None
    home = Path(tempfile.mkdtemp(prefix="consent-demo-")) if home is None else home
    home.mkdir(parents=True, exist_ok=True)
    say(f"Demo instance in {home} (SQLite database and broker, no servers needed)")
    settings = Settings(consent_service_home=home, database_url="", broker_url="")
    samples = Samples.from_settings(settings)
    say("Fetching real sample photos (face_recognition's test images, from PyPI, cached)…")
    photos = {
        n: samples.sample(n).read_bytes()
        for n in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")
    }
    upgrade(settings.sqlalchemy_url)
    app = create_app(settings)
    failures = 0
    with ExitStack() as stack, app.app_context():
        _start_worker(home, stack, settings.gallery_shards)
        url = start_web(app, stack)
        svc = services()
        say(f"Web app and API at {url}; a Celery worker with the face model is running.\n")

        enrolled = {}
        for email, names in (
            ("alice@example.org", ["obama.jpg", "obama2.jpg"]),
            ("bob@example.org", ["biden.jpg"]),
        ):
            with db.unit_of_work() as s:  # its end commits, then sends the enrollment task
                enrollment, _ = import_face(
                    s,
                    svc.media_store,
                    email,
                    [photos[n] for n in names],
                    settings.enrollment_max_photos,
                )
            result = wait_for_enrollment(db.engine(), enrollment.id, timeout=600)
            if result.status != EnrollmentStatus.COMPLETED:
                say(f"enrollment of {email} failed: {result.error}")
                return 1
            enrolled[email] = result.subject_id
            say(
                f"Enrolled {email} from {', '.join(names)}: "
                f"{result.template_count} face template(s)"
            )

        with db.unit_of_work() as s:
            provider = create_provider(s, "DemoStudio")
            api_key = issue_key(s, provider, "demo")
            grant = consent.grant(
                s,
                svc.audit_key,
                enrolled["alice@example.org"],
                consent.GrantRequest(
                    operations=[Operation.FACE_SWAP],
                    roles=[Role.SOURCE, Role.TARGET],
                    all_providers=True,
                    provider_ids=[],
                    purpose="demo",
                    valid_until=utcnow() + timedelta(days=30),
                ),
                consent.Evidence(actor="operator:demo", identity_method="operator-demo"),
            )
        say("Provider DemoStudio registered with an API key.")
        say(
            "Alice grants face_swap (source and target) to all providers for 30 days; "
            "Bob grants nothing.\n"
        )

        client = ConsentClient(url, api_key)
        stack.callback(client.close)
        sources = {n: samples.sample(n) for n in ("obama3.jpg", "biden.jpg")}

        def check(title: str, expected: DecisionKind, **media) -> None:
            nonlocal failures
            job = client.gate(Operation.FACE_SWAP.value, wait=True, timeout=600, **media)
            found = ", ".join(f"{f['role']}:{f['outcome']}" for f in job["findings"]) or "none"
            ok = job["decision"] == expected
            failures += not ok
            say(
                f"{'OK ' if ok else 'BAD'} {title}\n    → {job['decision']} "
                f"(reasons: {', '.join(job['reasons'])}; people found: {found})"
                + ("" if ok else f"  [expected {expected}]")
            )

        check(
            "A new photo of Alice as the source of a face swap",
            DecisionKind.ALLOW,
            source=sources["obama3.jpg"],
        )
        check(
            "Alice as source, into a photo of Bob (target)",
            DecisionKind.NEEDS_CONSENT,
            source=sources["obama3.jpg"],
            target=sources["biden.jpg"],
        )
        with db.unit_of_work() as s:
            consent.revoke(
                s,
                svc.audit_key,
                enrolled["alice@example.org"],
                grant.grant_id,
                consent.Evidence(actor="operator:demo", identity_method="operator-demo"),
            )
        say("\nAlice revokes her grant.\n")
        check(
            "The same photo of Alice, after she revoked",
            DecisionKind.DENY,
            source=sources["obama3.jpg"],
        )
        scrape = requests.get(f"{url}/metrics", timeout=30).text
        kept = ""
        if not temporary:  # a temporary home is removed at the end
            (home / "metrics.prom").write_text(scrape)
            kept = f"; the whole scrape in {home / 'metrics.prom'}"
        say(f"\nMetrics after these jobs (GET {url}/metrics{kept}):")
        for line in _metrics_summary(scrape):
            say(f"    {line}")
    say("\nAll decisions as expected." if not failures else f"\n{failures} unexpected decision(s)")
    if temporary:
        shutil.rmtree(home, ignore_errors=True)
    return 1 if failures else 0
