"""The audit head under load: decisions per second with concurrent workers on PostgreSQL.

Every decision, grant and enrollment appends to the one audit log, whose head (`audit_head`,
one row) each appender locks until its transaction ends; a decision also names the tree it is
recorded under in its signed token (`audit.checkpoint_claim`), so the lock is held from that
claim to the commit. This measures how many decisions per second that lets through.

What runs: a fresh PostgreSQL database, migrated; a provider; `--subjects` people, each with a
grant (audited like any grant); `--jobs` jobs submitted through the real API (the Flask app's
test client, one small media item each, kept in the configured media store, by default the
database store on PostgreSQL). Then `--workers` processes (8 by default) each take their share
of the jobs and run the gate pipeline's two database steps, exactly as the worker does
(`pipeline.claim`, then `pipeline.record`: subject locks, grants re-read, the token signed
under the head's checkpoint, decision, revision, findings, audit entries, the `job.decided`
outbox row, the media destroyed after the commit), each its own unit of work. The analysis
(whom the media show) is given: one person, a random enrolled subject, so the face model's
time is left out of the decisions' rate.

The matching rate it is compared with is measured in the same run on this machine: the real
face pipeline (`pipeline.load` + `pipeline.analyse` with the dlib model) on a sample photo,
times the cores (`--cores`, default all). Ratio = decisions/s (8 workers) / matching rate: above
1, the audit head does not cap the gate; the matchers do.

The audit log is verified at the end (hash chain, Merkle head against the entries).

Run: `python bench/audit_head.py [--workers 8] [--jobs 1200]` (PostgreSQL at TEST_POSTGRES_URL,
default postgresql+psycopg://postgres@127.0.0.1:5432/postgres; it creates and drops its own
database).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.support, run as `python bench/audit_head.py`
    sys.path.insert(0, str(ROOT))

from urllib3 import encode_multipart_formdata  # noqa: E402

from consent_service import db  # noqa: E402
from consent_service.accounts.models import Subject, User  # noqa: E402
from consent_service.app import create_app  # noqa: E402
from consent_service.audit import merkle  # noqa: E402
from consent_service.audit import service as audit  # noqa: E402
from consent_service.consent import service as consent  # noqa: E402
from consent_service.gate import pipeline  # noqa: E402
from consent_service.gate.decisions import Analysis, PersonSeen  # noqa: E402
from consent_service.gate.tasks import signing  # noqa: E402
from consent_service.migrate import upgrade  # noqa: E402
from consent_service.providers.service import create_provider, issue_key  # noqa: E402
from consent_service.runtime import services  # noqa: E402
from consent_service.settings import Settings  # noqa: E402
from consent_service.timeutil import utcnow  # noqa: E402
from consent_service.vocabulary import Operation, Role  # noqa: E402
from tests.support import postgres_database  # noqa: E402

INLINE = pipeline.Delivery(None, timedelta(minutes=5))  # claimed here, not by a task message

NO_SIGN_IN = "-"  # the bench's people never sign in: no password hash


def _settings(home: Path, url: str) -> Settings:
    return Settings(
        consent_service_home=home,
        database_url=url,
        api_rate_limit="1000000000/minute",
    )


def setup(settings: Settings, n_subjects: int, n_jobs: int) -> tuple[list[str], list[int]]:
    app = create_app(settings)
    app.extensions["task_sender"] = lambda name, args: None  # no worker: the bench decides
    with app.app_context():
        svc = services()
        with db.unit_of_work() as s:
            provider = create_provider(s, "Bench Studio")
            key = issue_key(s, provider)
        subject_ids = []
        with db.unit_of_work() as s:
            for i in range(n_subjects):
                user = User(
                    email=f"p{i}@example.org", password_hash=NO_SIGN_IN, email_verified_at=utcnow()
                )
                s.add(user)
                s.flush()
                subject = Subject(user_id=user.id)
                s.add(subject)
                s.flush()
                subject_ids.append(subject.id)
        for subject_id in subject_ids:
            with db.unit_of_work() as s:
                consent.grant(
                    s,
                    svc.audit_key,
                    subject_id,
                    consent.GrantRequest(
                        operations=[Operation.FACE_SWAP],
                        roles=[Role.SOURCE, Role.TARGET],
                        all_providers=True,
                        provider_ids=[],
                    ),
                    consent.Evidence(actor="bench", identity_method="bench"),
                )
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    job_ids = []
    for i in range(n_jobs):
        body, content_type = encode_multipart_formdata(
            [("operation", "face_swap"), ("source", ("a.jpg", secrets.token_bytes(2048)))]
        )
        answer = client.post("/api/v1/jobs", data=body, content_type=content_type, headers=headers)
        assert answer.status_code == 202, answer.get_json()
        job_ids.append(answer.get_json()["id"])
        if i and i % 500 == 0:
            print(f"  {i} jobs submitted", flush=True)
    app.extensions["db_engine"].dispose()
    return job_ids, subject_ids


def _worker(settings, job_ids, subject_ids, start, done: multiprocessing.Queue) -> None:
    app = create_app(settings)
    app.extensions["task_sender"] = lambda name, args: None  # webhooks: none registered here
    with app.app_context():
        svc = services()
        sign = signing(svc)
        start.wait()
        t0, c0 = time.perf_counter(), time.process_time()
        for i, job_id in enumerate(job_ids):
            with db.unit_of_work() as s:
                claimed = pipeline.claim(s, job_id, INLINE, 3, svc.audit_key, svc.media_store)
            assert isinstance(claimed, pipeline.Claim), claimed
            person = PersonSeen(
                0,
                Role.SOURCE,
                (1, 2, 3, 4),
                subject_ids[(i * 7 + os.getpid()) % len(subject_ids)],
                False,
            )
            with db.unit_of_work() as s:
                status = pipeline.record(s, job_id, Analysis([person]), sign, svc.media_store)
            assert status == "decided", status
        done.put((time.perf_counter() - t0, time.process_time() - c0))
    app.extensions["db_engine"].dispose()


def run_workers(
    settings: Settings, job_ids: list[str], subject_ids: list[int], n: int
) -> tuple[float, float]:
    """Decide `job_ids` with `n` processes: (decisions per second, first start to last end;
    the workers' own CPU ms per decision, the database's not counted)."""
    ctx = multiprocessing.get_context("spawn")
    start, done = ctx.Event(), ctx.Queue()
    shares = [job_ids[i::n] for i in range(n)]
    procs = [
        ctx.Process(target=_worker, args=(settings, share, subject_ids, start, done))
        for share in shares
    ]
    for p in procs:
        p.start()
    time.sleep(8)  # every process has built its app (imports, keys) before the clock starts
    t0 = time.perf_counter()
    start.set()
    cpu = sum(done.get()[1] for _ in procs)
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a bench worker failed (exit {p.exitcode})")
    return len(job_ids) / wall, cpu * 1000 / len(job_ids)


def matching_rate(settings: Settings, cores: int, repeats: int) -> tuple[float, float, float]:
    """(seconds per photo, photos per second on `cores`, CPU seconds per photo): the worker's
    analyse step on a real sample photo, with the real face model, in this process."""
    from consent_service.demo.samples import Samples

    photo = Samples.from_settings(settings).sample("obama3.jpg").read_bytes()
    app = create_app(settings)
    with app.app_context():
        svc = services()
        with db.unit_of_work() as s:
            matcher = pipeline.matcher(s, Operation.FACE_SWAP, svc.face_matching)
        media = [(0, Role.SOURCE, photo)]
        pipeline.analyse(media, Operation.FACE_SWAP, matcher)  # model load, warm caches
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            pipeline.analyse(media, Operation.FACE_SWAP, matcher)
        per_photo = (time.perf_counter() - t0) / repeats
        cpu = (time.process_time() - c0) / repeats
    app.extensions["db_engine"].dispose()
    return per_photo, cores / per_photo, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=1200, help="decided by the workers")
    parser.add_argument("--serial-jobs", type=int, default=150, help="decided by one process")
    parser.add_argument("--subjects", type=int, default=200)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--photos", type=int, default=5, help="analyses timed for the rate")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp, postgres_database() as url:
        settings = _settings(Path(tmp), url)
        upgrade(settings.sqlalchemy_url)
        print(f"media store: {settings.media_store_kind}")
        t = time.perf_counter()
        job_ids, subject_ids = setup(settings, args.subjects, args.jobs + args.serial_jobs)
        print(
            f"setup: {len(job_ids)} jobs, {len(subject_ids)} subjects granted in "
            f"{time.perf_counter() - t:.0f} s"
        )
        serial, serial_cpu = run_workers(settings, job_ids[: args.serial_jobs], subject_ids, 1)
        print(f"1 worker: {serial:.1f} decisions/s, {serial_cpu:.1f} CPU ms each", flush=True)
        rate, cpu = run_workers(settings, job_ids[args.serial_jobs :], subject_ids, args.workers)
        print(f"{args.workers} workers: {rate:.1f} decisions/s, {cpu:.1f} CPU ms each", flush=True)
        per_photo, matching, photo_cpu = matching_rate(settings, args.cores, args.photos)
        print(
            f"matching: {per_photo * 1000:.0f} ms per photo ({photo_cpu * 1000:.0f} CPU ms), "
            f"{matching:.2f} photos/s on {args.cores} cores"
        )
        app = create_app(settings)
        with app.app_context(), db.unit_of_work() as s:
            chain = audit.verify(s, services().audit_key)
            head = audit.tree_head(s)
            leaves = audit.leaf_hashes(s, head.size)
            intact = chain.ok and merkle.root(leaves) == head.root
        app.extensions["db_engine"].dispose()
        print(
            f"audit log: {head.size} entries, chain and Merkle head "
            f"{'intact' if intact else 'BROKEN'}"
        )
        print(f"load average after: {os.getloadavg()}")
        print(
            f"audit head: {rate:.1f} decisions/s with {args.workers} workers "
            f"({serial:.1f}/s with 1, scaling {rate / serial:.2f}), matching {matching:.2f}/s "
            f"on {args.cores} cores, ratio {rate / matching:.1f}; CPU per decision "
            f"{cpu:.0f} ms vs per photo {photo_cpu * 1000:.0f} ms, "
            f"ratio {photo_cpu * 1000 / cpu:.1f}"
        )


if __name__ == "__main__":
    main()
