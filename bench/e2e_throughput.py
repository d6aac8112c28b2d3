"""End-to-end throughput: the service through its API against the face_recognition CLI, on the
same real photos with the same number of processes.

What it measures:

  (a) the CLI: `face_recognition --cpus P --tolerance T KNOWN_DIR UNKNOWN_DIR` (its console
      script) over the N photos, wall clock from its start to its exit (process start, model
      load and the known faces included: that is how the CLI is run);
  (b) the service: a fresh embedded instance (SQLite database and broker, encrypted media
      store) with its API served by waitress in this process and one Celery worker of P
      processes (`consent_service.processes.worker_command`, what `serve` starts); the known
      people enrolled through the enrollment task, one of them granting face_swap. The worker's
      processes are warmed (each has loaded the face model) before the clock starts; then the
      N photos are submitted at once (`POST /api/v1/jobs`, 8 client threads), and the clock
      stops when the API says every job is decided (`GET /api/v1/jobs/<id>`, one polling
      thread). Media decoding, storage, encryption, the database, the broker, the decision's
      signature and the audit chain are all in it.

Both print images/s; the ratio is the service over the CLI (goal >= 3.0). The two runs are
interleaved (service, CLI, service) when --rounds is 2 or more, so drifting load from the other
users of this machine weighs on both; the 1-minute load average is printed before and after.

The decisions check: every photo's findings through the API are compared with a reference
computed in this process by the face pipeline as it was before the proposer
(`DlibFaceEmbedder` with HOG scanning the whole FACE_DETECT_MAX_SIDE copy, FACE_DETECTOR=hog;
`Gallery.identify_many`, the default tolerance and margin): the people found per photo (the known
person, ambiguous, or unenrolled) must be the same. `FACE_DETECTOR=hog python
bench/e2e_throughput.py` runs the service that way too.

Run: `python bench/e2e_throughput.py [--processes P] [--repeat R] [--rounds K]`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

KNOWN = {"obama.jpg": "alice@example.org", "biden.jpg": "bob@example.org"}
PHOTOS = (
    "obama2.jpg",
    "obama3.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
    "32bit.png",  # RGBA PNG of the obama2.jpg photo
    "biden.jpg",
    "t1.jpg",  # six faces, none known
    "Tom_Hanks_54745.png",  # 112x112 crop, not known
    "mask_black.jpg",  # the insightface masked faces
    "mask_blue.jpg",
    "mask_green.jpg",
    "mask_white.jpg",
)
# What the gate concludes for each known person: Alice granted face_swap, Bob granted nothing.
OUTCOME = {"obama.jpg": "consented", "biden.jpg": "not_covered"}


def cli_executable() -> str:
    beside = Path(sys.executable).parent / "face_recognition"
    found = str(beside) if beside.exists() else shutil.which("face_recognition")
    if not found:
        sys.exit("the face_recognition console script is not installed in this environment")
    return found


def run_cli(known: Path, unknown: Path, processes: int, tolerance: float) -> float:
    argv = [cli_executable(), "--cpus", str(processes), "--tolerance", str(tolerance)]
    start = time.perf_counter()
    done = subprocess.run(
        [*argv, str(known), str(unknown)], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"face_recognition exited {done.returncode}:\n{done.stderr}")
    answered = {line.rsplit(",", 2)[0] for line in done.stdout.splitlines() if line}
    if len(answered) != len(list(unknown.iterdir())):
        sys.exit(f"the CLI answered for {len(answered)} of {len(list(unknown.iterdir()))} images")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=None, help="default: one per core")
    parser.add_argument("--repeat", type=int, default=4, help="times the photo set is sent")
    parser.add_argument("--rounds", type=int, default=2, help="service runs (CLI: one fewer)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
    # waitress says so each time all 8 submissions wait for its 4 threads: expected here.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)

    from consent_service import db
    from consent_service.app import create_app
    from consent_service.biometrics.operator_import import import_face
    from consent_service.biometrics.service import wait_for_enrollment
    from consent_service.client import ConsentClient
    from consent_service.consent import service as consent
    from consent_service.demo import start_web
    from consent_service.demo.samples import Samples
    from consent_service.migrate import upgrade
    from consent_service.processes import worker_command
    from consent_service.providers.service import create_provider, issue_key
    from consent_service.runtime import services
    from consent_service.settings import Settings, usable_cores
    from consent_service.timeutil import utcnow
    from consent_service.vocabulary import EnrollmentStatus, JobStatus, Operation, Role

    processes = args.processes or usable_cores()
    defaults = Settings(_env_file=None)
    tolerance = defaults.face_tolerance
    samples = Samples.from_settings(defaults)
    n = len(PHOTOS) * args.repeat
    load_before = os.getloadavg()

    print("End-to-end throughput: the service through its API vs the face_recognition CLI.")
    print(
        f"{len(PHOTOS)} photos x {args.repeat} = {n} images; {processes} processes each "
        f"(CLI --cpus {processes}; worker --concurrency {processes}); tolerance {tolerance}."
    )
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="e2e-bench-")))
        known, unknown, home = root / "known", root / "unknown", root / "home"
        for d in (known, unknown, home):
            d.mkdir()
        for name in KNOWN:
            (known / name).symlink_to(samples.sample(name))
        paths = []
        for r in range(args.repeat):
            for name in PHOTOS:
                link = unknown / f"{r:02d}_{name}"
                link.symlink_to(samples.sample(name))
                paths.append(link)

        # The service: settings given to this process and (through the environment) the worker.
        env = {
            **os.environ,
            "CONSENT_SERVICE_HOME": str(home),
            "DATABASE_URL": "",
            "BROKER_URL": "",
            # The bench's one API key sends every job and polls them all.
            "API_RATE_LIMIT": "1000000/minute",
        }
        settings = Settings(
            consent_service_home=home,
            database_url="",
            broker_url="",
            api_rate_limit="1000000/minute",
        )
        upgrade(settings.sqlalchemy_url)
        app = create_app(settings)
        stack.enter_context(app.app_context())
        log = stack.enter_context(open(home / "worker.log", "wb"))  # noqa: SIM115
        worker = subprocess.Popen(
            worker_command(processes, ("--loglevel", "WARNING")),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(worker.wait, 60)
        stack.callback(worker.terminate)
        url = start_web(app, stack)
        svc = services()

        subjects = {}
        for name, email in KNOWN.items():
            with db.unit_of_work() as s:
                enrollment, _ = import_face(
                    s, svc.media_store, email, [samples.sample(name).read_bytes()], 5
                )
            done = wait_for_enrollment(db.engine(), enrollment.id, timeout=900)
            if done.status != EnrollmentStatus.COMPLETED:
                sys.exit(f"enrolling {name} failed: {done.error}")
            subjects[name] = done.subject_id
        with db.unit_of_work() as s:
            provider = create_provider(s, "Bench")
            api_key = issue_key(s, provider, "bench")
            consent.grant(
                s,
                svc.audit_key,
                subjects["obama.jpg"],
                consent.GrantRequest(
                    operations=[Operation.FACE_SWAP],
                    roles=[Role.SOURCE, Role.TARGET],
                    all_providers=True,
                    provider_ids=[],
                    purpose="bench",
                    valid_until=utcnow() + timedelta(days=1),
                ),
                consent.Evidence(actor="operator:bench", identity_method="operator-bench"),
            )
        local = threading.local()
        clients: list[ConsentClient] = []

        def client() -> ConsentClient:
            if not hasattr(local, "client"):
                local.client = ConsentClient(url, api_key, timeout=600)
                clients.append(local.client)
            return local.client

        stack.callback(lambda: [c.close() for c in clients])

        def submit(path: Path) -> str:
            return client().submit(Operation.FACE_SWAP.value, source=path)["id"]

        def wait_all(ids: list[str]) -> dict[str, dict]:
            jobs: dict[str, dict] = {}
            poller = client()
            while len(jobs) < len(ids):
                for job_id in ids:
                    if job_id not in jobs:
                        job = poller.job(job_id)
                        if job["status"] in (JobStatus.DECIDED, JobStatus.FAILED):
                            jobs[job_id] = job
                time.sleep(0.2)
            return jobs

        def run_service(batch: list[Path]) -> tuple[float, list[dict]]:
            start = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                ids = list(pool.map(submit, batch))
            jobs = wait_all(ids)
            return time.perf_counter() - start, [jobs[i] for i in ids]

        # Warm every worker process (each loads the face model on its first job).
        run_service([samples.sample("obama2.jpg")] * (2 * processes))

        service_runs: list[float] = []
        cli_runs: list[float] = []
        answers: list[dict] = []
        for k in range(args.rounds):
            seconds, answers = run_service(paths)
            service_runs.append(seconds)
            print(f"  service run {k + 1}: {seconds:.1f} s ({n / seconds:.2f} images/s)")
            if k < max(1, args.rounds - 1):
                seconds = run_cli(known, unknown, processes, tolerance)
                cli_runs.append(seconds)
                print(f"  CLI run {k + 1}:     {seconds:.1f} s ({n / seconds:.2f} images/s)")
        load_after = os.getloadavg()

        reference = reference_findings(samples, subjects, defaults)
    failed = [a for a in answers if a["status"] != JobStatus.DECIDED]
    ours = n * len(service_runs) / sum(service_runs)
    cli = n * len(cli_runs) / sum(cli_runs)
    print()
    print(f"service: {ours:.2f} images/s (mean of {len(service_runs)} runs)")
    print(f"CLI:     {cli:.2f} images/s (mean of {len(cli_runs)} runs)")
    print(
        f"Machine: {os.cpu_count()} CPUs; load average (1/5/15 min) "
        f"{'/'.join(f'{x:.1f}' for x in load_before)} before, "
        f"{'/'.join(f'{x:.1f}' for x in load_after)} after."
    )
    different = []
    for path, job in zip(paths, answers, strict=True):
        name = path.name.split("_", 1)[1]
        got = Counter(f["outcome"] for f in job["findings"])
        if got != reference[name]:
            different.append(f"{name}: API {dict(got)}, reference {dict(reference[name])}")
    print(
        f"jobs failed: {len(failed)}; photos whose findings differ from the reference: "
        f"{len(different)}"
    )
    for line in sorted(set(different)):
        print(f"  {line}")
    equal = "yes" if not different and not failed else "no"
    print(
        f"e2e throughput: service {ours:.2f} images/s, CLI {cli:.2f} images/s, "
        f"ratio {ours / cli:.2f}; decisions equal: {equal}"
    )


def reference_findings(samples, subjects: dict[str, int], settings) -> dict[str, Counter]:
    """Each photo's people as today's face pipeline finds and names them, in this process."""
    from consent_service.biometrics.faces import DlibFaceEmbedder
    from consent_service.biometrics.images import decode_image
    from consent_service.biometrics.matching import Gallery

    # The detection before the proposer (FACE_DETECTOR=hog): HOG scans the whole copy.
    embedder = DlibFaceEmbedder(
        detect_max_side=settings.face_detect_max_side,
        min_size=settings.face_min_size,
        proposer_model=None,
    )

    def faces(name: str):
        return embedder.detect(decode_image(samples.sample(name).read_bytes(), 40_000_000))

    gallery = Gallery.build(1, [(subjects[n], faces(n)[0].embedding) for n in KNOWN])
    outcome_of = {subjects[n]: OUTCOME[n] for n in KNOWN}
    found = {}
    for name in PHOTOS:
        probes = [f.embedding for f in faces(name)]
        matches = gallery.identify_many(probes, settings.face_tolerance, settings.face_margin)
        found[name] = Counter(
            outcome_of[m.subject_id]
            if m.subject_id is not None
            else ("ambiguous" if m.ambiguous else "unenrolled")
            for m in matches
        )
    return found


if __name__ == "__main__":
    main()
