"""Every key rotated under a running load (issue 10, item 2): a real Celery worker decides a
stream of jobs while `keys rotate <purpose>` runs for each purpose in turn; per purpose it
prints the rows rotated, the time, the jobs submitted meanwhile, those whose findings named an
enrolled person (the galleries kept working) and the decisions that failed (goal: 0).

The stack: the Flask app (driven through its test client, as a provider's pipeline would),
SQLite or PostgreSQL, a Redis server of its own on a free port, and real worker processes
(`celery -A workers.celery_app worker`, the real face model). Two people are enrolled from the
sample photos through the real enrollment task; `--templates` more templates (random vectors,
sealed like any template, under a model no job searches) give the template-KEK re-wrap rows to
move. The keyring re-reads its key sets every second here (KEYRING_REFRESH_INTERVAL=1), so each
rotation settles in 3 s.

During the template-KEK re-wrap a second worker is started: its cold start builds its gallery
from rows under both KEK versions at once (its snapshot, sealed under the old KEK, no longer
opens). After the last rotation: the audit log is verified against every checkpoint (signed
before and after the checkpoint key's rotation), every decision token against the JWKS the web
serves, and every sealed row is counted by KEK version.

Run: `python bench/key_rotation.py [--backend sqlite|postgres] [--templates 5000]
[--rate 4] [--settle 6]` (about 3 minutes on two shared cores).
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import numpy as np  # noqa: E402
from faults import RedisServer  # noqa: E402
from PIL import Image  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlmodel import col, select  # noqa: E402
from urllib3 import encode_multipart_formdata  # noqa: E402

from consent_service import db  # noqa: E402
from consent_service.app import create_app  # noqa: E402
from consent_service.audit import service as audit  # noqa: E402
from consent_service.audit.checkpoints import load_signers, parse_note, split_notes  # noqa: E402
from consent_service.audit.tasks import checkpoint_now  # noqa: E402
from consent_service.biometrics.models import BiometricTemplate, Enrollment  # noqa: E402
from consent_service.biometrics.operator_import import import_face  # noqa: E402
from consent_service.biometrics.service import seal_template  # noqa: E402
from consent_service.demo.samples import Samples  # noqa: E402
from consent_service.gate.models import Decision, Finding, GateJob  # noqa: E402
from consent_service.keyring import Purpose  # noqa: E402
from consent_service.keys import rotation  # noqa: E402
from consent_service.keys.service import kek_versions  # noqa: E402
from consent_service.migrate import upgrade  # noqa: E402
from consent_service.processes import worker_command  # noqa: E402
from consent_service.providers.service import create_provider, issue_key  # noqa: E402
from consent_service.runtime import services  # noqa: E402
from consent_service.settings import Settings  # noqa: E402
from consent_service.tokens.service import keys_from_jwks, verify_token  # noqa: E402

ORDER = (
    Purpose.TEMPLATE_KEK,
    Purpose.MEDIA,
    Purpose.AUDIT_MAC,
    Purpose.PSEUDONYMS,
    Purpose.CHECKPOINT_SIGNING,
    Purpose.DECISION_SIGNING,
)
SYNTHETIC_MODEL = "bench/random-unit-128"  # in no gallery a job searches


@dataclass
class Window:
    purpose: Purpose
    key_id: str = ""
    rows: int = 0
    seconds: float = 0.0
    jobs: list[str] = field(default_factory=list)


class Load:
    """Submits jobs at `rate` per second from a thread; each job lands in the current window."""

    def __init__(self, app, key: str, media: list[bytes], rate: float):
        self.app, self.key, self.media, self.rate = app, key, media, rate
        self.window: Window | None = None
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._n = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        client = self.app.test_client()
        while not self._stop.wait(1.0 / self.rate):
            media = self.media[self._n % len(self.media)]
            self._n += 1
            body, content_type = encode_multipart_formdata(
                [("operation", "face_swap"), ("source", ("m.jpg", media))]
            )
            answer = client.post(
                "/api/v1/jobs",
                data=body,
                content_type=content_type,
                headers={"Authorization": f"Bearer {self.key}"},
            )
            if answer.status_code != 202:
                self.errors.append(f"{answer.status_code} {answer.get_data(as_text=True)[:200]}")
                continue
            if self.window is not None:
                self.window.jobs.append(answer.get_json()["id"])


def tiny_picture(n: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (48, 48), (n % 256, 90, 7)).save(out, "JPEG")
    return out.getvalue()


def seed_templates(app, count: int) -> None:
    """`count` sealed templates of a model no job searches, bulk-inserted (rows to re-wrap)."""
    envelope = services().envelope
    rng = np.random.default_rng(7)
    with app.app_context(), db.unit_of_work() as s:
        subject_id = s.exec(select(Enrollment.subject_id)).first()
        rows = []
        for _ in range(count):
            vector = rng.standard_normal(128)
            row = BiometricTemplate(
                id=secrets.token_hex(16),
                subject_id=subject_id,
                modality="face",
                model=SYNTHETIC_MODEL,
                ciphertext=b"",
                wrapped_key=b"",
                enrollment_id=None,
            )
            seal_template(envelope, row, vector / np.linalg.norm(vector))
            rows.append(
                {c: getattr(row, c) for c in ("id", "subject_id", "modality", "model")}
                | {
                    "ciphertext": row.ciphertext,
                    "wrapped_key": row.wrapped_key,
                    "kek_id": row.kek_id,
                    "enrollment_id": None,
                    "created_at": row.created_at,
                }
            )
        s.execute(insert(BiometricTemplate), rows)


def wait_jobs(app, job_ids: list[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        with app.app_context(), db.unit_of_work() as s:
            statuses = dict(
                s.exec(select(GateJob.id, GateJob.status).where(col(GateJob.id).in_(job_ids))).all()
            )
        if all(v in ("decided", "failed") for v in statuses.values()) or (
            time.monotonic() > deadline
        ):
            return statuses
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--templates", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=4.0, help="jobs submitted per second")
    parser.add_argument("--settle", type=float, default=6.0, help="seconds of load per purpose")
    args = parser.parse_args()

    with ExitStack() as cleanup, tempfile.TemporaryDirectory(prefix="key-rotation-") as tmp:
        folder = Path(tmp)
        redis = RedisServer(folder)
        redis.start()
        cleanup.callback(redis.kill)
        if args.backend == "postgres":
            from tests.support import postgres_database

            database_url = cleanup.enter_context(postgres_database())
        else:
            database_url = f"sqlite:///{folder / 'consent.sqlite'}"
        overrides = {"keyring_refresh_interval": 1.0, "outbox_sweep_after": 5.0}
        settings = Settings(
            consent_service_home=folder,
            database_url=database_url,
            broker_url=redis.url,
            api_rate_limit="1000000/minute",
            **overrides,
        )
        upgrade(settings.sqlalchemy_url)
        app = create_app(settings)
        cleanup.callback(lambda: app.extensions["db_engine"].dispose())
        env = {
            **os.environ,
            "CONSENT_SERVICE_HOME": str(folder),
            "DATABASE_URL": database_url,
            "BROKER_URL": redis.url,
            "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path]),
            **{k.upper(): str(v) for k, v in overrides.items()},
        }
        workers: list[subprocess.Popen] = []

        def start_worker() -> None:
            argv = worker_command(1, ("--loglevel", "WARNING"))
            with open(folder / f"worker{len(workers)}.log", "wb") as log:
                workers.append(
                    subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
                )

        def stop_workers() -> None:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()

        cleanup.callback(stop_workers)
        samples = Samples.from_settings(Settings())
        photos = {n: samples.sample(n).read_bytes() for n in ("obama.jpg", "biden.jpg")}

        start_worker()
        with app.app_context():
            for n, photo in enumerate(photos.values()):
                with db.unit_of_work() as s:
                    import_face(s, services().media_store, f"p{n}@example.org", [photo], 5)
            with db.unit_of_work() as s:
                provider = create_provider(s, "Rotation bench")
                key = issue_key(s, provider)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with app.app_context(), db.unit_of_work() as s:
                pending = s.exec(select(Enrollment).where(Enrollment.status == "pending")).all()
            if not pending:
                break
            time.sleep(1)
        with app.app_context():
            seed_templates(app, args.templates)
            checkpoint_now(force=True)
        load = Load(app, key, [*photos.values(), tiny_picture(1), tiny_picture(2)], args.rate)
        warmup = Window(Purpose.TEMPLATE_KEK)
        load.window = warmup
        load.start()
        time.sleep(args.settle)

        windows: list[Window] = []
        for purpose in ORDER:
            window = Window(purpose)
            load.window = window
            windows.append(window)
            if purpose is Purpose.TEMPLATE_KEK:
                # A cold start in the middle of the re-wrap: rows under both KEKs at once.
                threading.Timer(4.0, start_worker).start()
            started = time.monotonic()
            with app.app_context():
                svc = services()
                result = rotation.rotate(
                    purpose, svc.keyring, svc.settings, db.unit_of_work, batch_size=500
                )
                checkpoint_now(force=True)  # signed by whichever checkpoint key is newest
            window.key_id, window.rows = result.key_id, result.rows
            window.seconds = time.monotonic() - started
            time.sleep(args.settle)
        load.stop()
        every = [j for w in (warmup, *windows) for j in w.jobs]
        statuses = wait_jobs(app, every, timeout=300)

        with app.app_context():
            svc = services()
            jwks = app.test_client().get("/.well-known/jwks.json").get_json()
            published = keys_from_jwks(jwks)
            with db.unit_of_work() as s:
                tokens = s.exec(select(Decision.token).where(col(Decision.job_id).in_(every))).all()
                kids = [verify_token(t, published)[1] for t in tokens if t]
                verifiers = [k.verifier for k in load_signers(svc.settings)]
                kept = svc.settings.audit_checkpoints_path.read_text()
                held = [parse_note(n, verifiers) for n in split_notes(kept)]
                report = audit.verify_log(s, svc.audit_key, verifiers, held)
                versions = kek_versions(s)
                # Findings that name an enrolled person: the galleries kept recognising people
                # while their templates were re-wrapped and a worker started cold mid-way.
                named = set(
                    s.exec(
                        select(Finding.job_id).where(
                            col(Finding.job_id).in_(every), col(Finding.subject_id).is_not(None)
                        )
                    ).all()
                )

        print(
            f"\nkey rotation under load ({args.backend}, {args.rate:g} jobs/s, "
            f"{args.templates} extra templates, 2 workers from mid template-kek)"
        )
        print(
            f"{'purpose':<20} {'new key id':<24} {'rows':>6} {'time s':>7} "
            f"{'jobs':>5} {'named':>6} {'failed':>7}"
        )
        failed_total = 0
        for w in windows:
            failed = sum(1 for j in w.jobs if statuses.get(j) != "decided")
            failed_total += failed
            print(
                f"{w.purpose.value:<20} {w.key_id:<24} {w.rows:>6} {w.seconds:>7.1f} "
                f"{len(w.jobs):>5} {sum(j in named for j in w.jobs):>6} {failed:>7}"
            )
        print(
            f"jobs in all: {len(every)}, decided {sum(v == 'decided' for v in statuses.values())}, "
            f"failed or undecided {len(every) - sum(v == 'decided' for v in statuses.values())}, "
            f"submissions refused {len(load.errors)}"
        )
        print(
            f"tokens verified against the served JWKS: {len(kids)} "
            f"(by key: {dict((k, kids.count(k)) for k in sorted(set(kids)))})"
        )
        print(
            f"audit log: {'intact' if report.ok else 'NOT intact'}, {report.size} entries, "
            f"{report.checkpoints} checkpoints checked; {list(report.problems)[:3]}"
        )
        print(f"sealed rows by template KEK: { {t: c for t, c in versions.items() if c} }")
        ok = failed_total == 0 and report.ok and not load.errors and len(kids) == len(tokens)
        print(
            f"failed decisions during rotations: {failed_total} (goal 0) -> "
            f"{'OK' if ok else 'FAILED'}"
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
